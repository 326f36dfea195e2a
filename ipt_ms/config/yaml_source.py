"""Reading a config: the YAML file (safe loader, no duplicate keys) and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ipt_ms.config.fields import ConfigError, _strip_optional


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path` (safe loader); an empty file is an empty mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}")
    from ipt_ms.fileio import note_input

    note_input(path)  # no output of this command may replace it
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKeyError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


class _DuplicateKeyError(Exception):
    pass


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """`yaml.SafeLoader` that refuses a key given twice in one mapping."""

        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise _DuplicateKeyError(f"key {key!r} appears twice in one section (lines {seen[key]} and "
                                             f"{line}); the second would silently win")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


class _LazyLoader:
    """Builds the loader class on first use (PyYAML is imported lazily)."""

    _cls = None

    def __call__(self, stream):
        if _LazyLoader._cls is None:
            _LazyLoader._cls = _unique_key_loader()
        return _LazyLoader._cls(stream)


_UniqueKeyLoader = _LazyLoader()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], 1e-4); the value is parsed as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key.subkey=value")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {text!r}: empty part in the key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], cls: type | None = None) -> dict[str, Any]:
    """A copy of `data` with each ``key=value`` override set (nested mappings created).

    With `cls`, override keys are checked against the dataclass first, so a typo is
    reported as an unknown override key rather than an unknown file key.
    """
    result = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        if cls is not None:
            _check_path(cls, parts, text)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[:i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def _check_path(cls: type, parts: list[str], text: str) -> None:
    current: Any = cls
    for i, part in enumerate(parts):
        if not (isinstance(current, type) and dataclasses.is_dataclass(current)):
            raise ConfigError(f"override {text!r}: {'.'.join(parts[:i])} is not a section")
        names = [f.name for f in dataclasses.fields(current) if f.init]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {'.'.join(parts[:i] + [close[0]])!r}?)" if close else ""
            raise ConfigError(f"override {text!r}: unknown key {'.'.join(parts[:i + 1])!r}{hint}")
        current = _strip_optional(typing.get_type_hints(current)[part])
