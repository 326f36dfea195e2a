"""User-facing errors: the CLI prints them as one line and exits with their code."""

from __future__ import annotations


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
