"""User-facing errors: the CLI prints them as one line and exits with their code."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, line/paragraph separators, bidirectional overrides and isolates:
# what a terminal would act on, and what must never become part of a file name
_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: a control character (`_CONTROLS`); lone surrogates (undecodable bytes of a file name) are not
#: among them: written back as a name they give the same bytes
CONTROL_CHARACTER = re.compile(f"[{_CONTROLS}]")
# ... and lone surrogates, which a terminal cannot print either
_UNSAFE = re.compile(f"[{_CONTROLS}\ud800-\udfff]")


def sanitize(text: str) -> str:
    """`text` with every control character escaped as Python would (``\\n``, ``\\x1b``,
    ``\\u202e``), so a message that echoes a user's path, key or task name stays one
    plain line and cannot move the cursor, recolour or clear the terminal."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], str(text))


def sanitize_lines(text: str) -> str:
    """`sanitize` for text of several lines (a table, a summary): line breaks kept, every
    other control character escaped."""
    return "\n".join(sanitize(line) for line in str(text).split("\n"))


class IPTError(Exception):
    """A problem with the user's input (file, weights, option). Exit code 2."""

    exit_code = 2


class WeightsMismatchError(IPTError):
    """Weights do not match the architecture; lists every offending key."""

    def __init__(self, missing=(), unexpected=(), mismatched=(), context: str = "weights"):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = sorted(mismatched)  # (key, expected_shape, found_shape)
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {_short(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {_short(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} (expected {tuple(a)}, found {tuple(b)})" for k, a, b in self.mismatched]
            parts.append(f"mis-shaped {len(shown)}: {_short(shown)}")
        super().__init__(f"{context} do not match the IPT architecture: " + "; ".join(parts))

    def details(self) -> str:
        """Full multi-line listing (the one-line message truncates long lists)."""
        lines = [str(self)]
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            lines += [f"  {title}: {k}" for k in items]
        lines += [f"  mis-shaped: {k} expected {tuple(a)} found {tuple(b)}" for k, a, b in self.mismatched]
        return "\n".join(lines)


class ToleranceExceededError(IPTError):
    """A parity check found errors above tolerance. Exit code 1."""

    exit_code = 1


def _short(items, limit: int = 6) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (framework errors run to pages), or its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
