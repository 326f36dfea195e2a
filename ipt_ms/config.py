"""YAML configuration files read into typed dataclasses, with errors that name the key.

Define a config as (nested) dataclasses; annotate fields with ordinary types and attach
limits with `option(...)`:

    @dataclass
    class Optim:
        lr: float = option(5e-5, min=0.0, min_inclusive=False, help="learning rate")
        betas: tuple[float, float] = (0.9, 0.999)

    @dataclass
    class Config:
        optim: Optim = field(default_factory=Optim)

    cfg = load_config(Config, "train.yaml", overrides=["optim.lr=1e-4"])

What is checked, each failure raising `ConfigError` with the dotted key:

* unknown keys (with a "did you mean" suggestion), in the file and in overrides;
* types: bool, int, float, str, `X | None`, `list[X]`, `tuple[X, ...]`, `tuple[X, Y]`,
  `dict[str, X]`, `Literal[...]` and nested dataclasses. A bool is not accepted as a
  number nor a number as a bool; an int is accepted for a float. Strings that spell a
  number are accepted for float fields because YAML 1.1 (PyYAML) reads ``5e-5`` -- no
  dot -- as a string;
* ranges and choices given to `option`; NaN and infinity are never numbers here (they
  would pass any ``> 0`` check);
* duplicate keys in a YAML mapping (PyYAML would silently keep the last one);
* a dataclass's own `validate()` method, for rules that involve several fields (raise
  `ConfigError` from it; `ConfigError.at(key)` helps with the message).

Files are read with `yaml.safe_load`. Overrides are ``dotted.key=value`` with the value
parsed as YAML (``--set data.tasks=[sr_x2,derain]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

from ipt_ms.errors import IPTError

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "apply_overrides",
    "config_diff",
    "from_dict",
    "load_config",
    "load_yaml",
    "option",
    "parse_override",
    "to_dict",
]


class ConfigError(IPTError):
    """A configuration file or override is invalid; the message names the key."""

    @classmethod
    def at(cls, key: str, message: str, source: str | None = None) -> ConfigError:
        where = f"{source}: " if source else ""
        return cls(f"{where}{key}: {message}" if key else f"{where}{message}")


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           min: float | None = None, max: float | None = None, min_inclusive: bool = True,
           max_inclusive: bool = True, choices: Iterable[Any] | None = None, help: str = "") -> Any:
    """A dataclass field with validation limits (numbers, or each item of a list of numbers)."""
    metadata = {"min": min, "max": max, "min_inclusive": min_inclusive, "max_inclusive": max_inclusive,
                "choices": tuple(choices) if choices is not None else None, "help": help}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------- reading
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


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = (),
                data: Mapping[str, Any] | None = None) -> T:
    """Build `cls` from a YAML file (or a mapping) plus dotted overrides, fully validated."""
    if path is not None:
        raw = load_yaml(path)
        source = str(path)
    else:
        raw = dict(data or {})
        source = None
    raw = apply_overrides(raw, overrides, cls)
    return from_dict(cls, raw, source=source)


# ------------------------------------------------------------------------------- conversion
def from_dict(cls: type[T], data: Mapping[str, Any], key: str = "", source: str | None = None) -> T:
    """Validate `data` against dataclass `cls` and build it (missing keys take defaults)."""
    if not isinstance(data, Mapping):
        raise ConfigError.at(key, f"expected a mapping of keys, got {_describe(data)}", source)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = str(unknown[0])
        close = difflib.get_close_matches(name, list(fields), n=1)
        hint = f" (did you mean {_join(key, close[0])!r}?)" if close else ""
        allowed = ", ".join(fields)
        raise ConfigError.at(_join(key, name), f"unknown key{hint}; allowed here: {allowed}", source)
    values = {}
    for name, value in data.items():
        f = fields[name]
        sub = _join(key, name)
        converted = _convert(hints[name], value, sub, source)
        _check_limits(f.metadata, converted, sub, source)
        values[name] = converted
    for name, f in fields.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError.at(_join(key, name), "required key is missing", source)
    try:
        obj = cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}" if source else str(err)) from err
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as err:
            prefix = f"{key}." if key else ""
            message = str(err)
            raise ConfigError(f"{source + ': ' if source else ''}{prefix}{message}") from err
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-ready data (tuples become lists) from a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def config_diff(old: Any, new: Any, ignore: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every leaf that differs between two configs
    (dataclasses or plain mappings). Keys in `ignore` (or under an ignored section) are skipped."""
    ignored = tuple(ignore)
    out: list[tuple[str, Any, Any]] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if key and any(key == i or key.startswith(i + ".") for i in ignored):
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, _ABSENT), b.get(k, _ABSENT), _join(key, str(k)))
        elif a != b:
            out.append((key, None if a is _ABSENT else a, None if b is _ABSENT else b))

    walk(to_dict(old), to_dict(new), "")
    return out


_ABSENT = object()


# ------------------------------------------------------------------------------- internals
def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


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


def _strip_optional(tp: Any) -> Any:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or (hasattr(types, "UnionType") and origin is getattr(types, "UnionType", None))


def _convert(tp: Any, value: Any, key: str, source: str | None) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError.at(key, f"expected {expected}, got {_describe(value)}", source)

    if tp is Any:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise fail(" or ".join(_type_name(a) for a in args))
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError.at(key, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}", source)
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        return from_dict(tp, value, key, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail("an integer")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise fail("a number") from None
        if number is None:
            raise fail("a number")
        if not math.isfinite(number):
            raise ConfigError.at(key, f"expected a finite number, got {value!r}", source)
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        args = typing.get_args(tp)
        if origin is list:
            item = args[0] if args else Any
            return [_convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError.at(key, f"expected a list of {len(args)} items, got {len(value)}", source)
        return tuple(_convert(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_convert(kt, k, key, source): _convert(vt, v, _join(key, str(k)), source) for k, v in value.items()}
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise fail(_type_name(tp))
    return value


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _check_limits(metadata: Mapping[str, Any], value: Any, key: str, source: str | None) -> None:
    if not metadata:
        return
    items = value if isinstance(value, (list, tuple)) else [value]
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, (list, tuple)) else key
        if item is None:
            continue
        choices = metadata.get("choices")
        if choices is not None and item not in choices:
            raise ConfigError.at(where, f"must be one of {', '.join(map(repr, choices))}, got {item!r}", source)
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        lo, hi = metadata.get("min"), metadata.get("max")
        if lo is not None:
            bad = item < lo if metadata.get("min_inclusive", True) else item <= lo
            if bad:
                op = ">=" if metadata.get("min_inclusive", True) else ">"
                raise ConfigError.at(where, f"must be {op} {_bound(lo)}, got {item!r}", source)
        if hi is not None:
            bad = item > hi if metadata.get("max_inclusive", True) else item >= hi
            if bad:
                op = "<=" if metadata.get("max_inclusive", True) else "<"
                raise ConfigError.at(where, f"must be {op} {_bound(hi)}, got {item!r}", source)


def _bound(limit: float) -> str:
    return str(limit) if isinstance(limit, int) else f"{limit:g}"
