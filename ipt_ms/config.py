"""YAML configuration files read into typed dataclasses, with errors that name the key.

Define a config as (nested) plain dataclasses; annotate fields with ordinary types (or the
stricter `Flag`, `Integer`, `Number` below) and attach limits with `option(...)`:

    @dataclass
    class Optim:
        lr: Number = option(5e-5, min=0.0, min_inclusive=False, help="learning rate")
        betas: tuple[Number, Number] = (0.9, 0.999)

    @dataclass
    class Config:
        optim: Optim = field(default_factory=Optim)

    cfg = load_config(Config, "train.yaml", overrides=["optim.lr=1e-4"])

pydantic v2 does the checking (types, `Literal` choices, ranges, unknown keys); this module
turns its report into one `ConfigError` line naming the file and the dotted key, such as
``configs/x.yaml: optim.lr: must be > 0, got 0``, with a "did you mean" for a mistyped key.
`Flag`, `Integer` and `Number` refuse what pydantic's lax mode would take (1 for true, true
for 1, "2" for 2, NaN); `Number` takes a string spelling a number because YAML 1.1 (PyYAML)
reads ``5e-5`` -- no dot -- as a string. By hand, here: duplicate keys in a YAML mapping
(PyYAML would silently keep the last one), override keys (the error names the override),
and each dataclass's own `validate()` for rules that involve several fields (raise
`ConfigError` from it; `ConfigError.at(key)` helps with the message).

Files are read with `yaml.safe_load`. Overrides are ``dotted.key=value`` with the value
parsed as YAML (``--set data.tasks=[sr_x2,derain]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    StrictBool,
    StrictInt,
    ValidationError,
    create_model,
)

from ipt_ms.errors import IPTError

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "Flag",
    "Integer",
    "Number",
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
           max_inclusive: bool = True, help: str = "") -> Any:
    """A dataclass field with limits on its (number) value, which pydantic checks on loading.

    The limits travel in the field's metadata under pydantic's own names (``gt``/``ge``/``lt``/
    ``le``, ``description``), which pydantic reads from a plain dataclass field. Limits on each
    item of a list go in the annotation: ``list[Annotated[int, Field(ge=1)]]``.
    """
    metadata: dict[str, Any] = {"description": help} if help else {}
    if min is not None:
        metadata["ge" if min_inclusive else "gt"] = min
    if max is not None:
        metadata["le" if max_inclusive else "lt"] = max
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
    """Validate `data` against dataclass `cls` (with pydantic) and build it (missing keys take defaults)."""
    if not isinstance(data, Mapping):
        raise ConfigError.at(key, f"expected a mapping of keys, got {_describe(data)}", source)
    try:
        obj = _validator(cls).model_validate({"value": _fill_empty_sections(cls, data, key, source)}).value
    except ValidationError as err:
        raise _config_error(err, cls, key, source) from None
    _run_validate_hooks(obj, key, source)
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




# ------------------------------------------------------------------------------- pydantic
def _validator(cls: type) -> type[BaseModel]:
    """A pydantic model with one field, `value: cls`; nested plain dataclasses take its config."""
    model = _VALIDATORS.get(cls)
    if model is None:
        model = _VALIDATORS[cls] = create_model(f"{cls.__name__}Source", __config__=_PYDANTIC_CONFIG,
                                                value=(cls, ...))
    return model


_VALIDATORS: dict[type, type[BaseModel]] = {}
#: unknown keys are refused (on plain dataclasses pydantic calls them unexpected keyword arguments)
_PYDANTIC_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def _fill_empty_sections(cls: type, data: Mapping[str, Any], key: str, source: str | None) -> dict[str, Any]:
    """`data` with each empty YAML section (``val:`` reads as None) given as {} so it takes the defaults."""
    hints = _hints(cls)
    out = {}
    for name, value in data.items():
        if not isinstance(name, str):  # YAML `1: x`; pydantic would call it "Keys should be strings" at [1]
            raise ConfigError.at(_join(key, str(name)), f"unknown key; allowed here: {', '.join(hints)}", source)
        tp = _strip(hints.get(name)) if isinstance(name, str) else None
        if _is_section(tp):
            if isinstance(value, Mapping):
                value = _fill_empty_sections(tp, value, _join(key, name), source)
            elif value is None:
                value = {}
        out[name] = value
    return out


def _run_validate_hooks(obj: Any, key: str, source: str | None) -> None:
    """Call each section's `validate()`, innermost first, naming the section in the error.

    Kept by hand rather than as pydantic model validators: these rules span several keys and
    say which one to change, in words pydantic's "Value error, ..." wrapping would spoil.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _run_validate_hooks(value, _join(key, f.name), source)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as err:
            prefix = f"{key}." if key else ""
            raise ConfigError(f"{source + ': ' if source else ''}{prefix}{err}") from err


def _config_error(err: ValidationError, cls: type, key: str, source: str | None) -> ConfigError:
    """pydantic's (multi-line) report as one `ConfigError` line naming the first bad key."""
    errors = err.errors(include_url=False)
    first = next((e for e in errors if e["type"] in _UNKNOWN_KEY), errors[0])
    loc = tuple(part for part in first["loc"][1:] if part != "[key]")  # [0] is the wrapper's "value"
    kind, value, ctx = first["type"], first.get("input"), first.get("ctx") or {}
    parent = _type_at(cls, loc[:-1]) if loc else None
    if kind in _UNKNOWN_KEY and _is_section(parent):
        names = list(_hints(parent))
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f" (did you mean {_dotted(key, loc[:-1] + (close[0],))!r}?)" if close else ""
        return ConfigError.at(_dotted(key, loc), f"unknown key{hint}; allowed here: {', '.join(names)}", source)
    if kind == "missing" and typing.get_origin(parent) is tuple:  # a list too short for a tuple[X, Y]
        wanted = len(typing.get_args(parent))
        return ConfigError.at(_dotted(key, loc[:-1]), f"expected a list of {wanted} items, got {len(value)}", source)
    here = _type_at(cls, loc)
    if kind == "too_long" and typing.get_origin(here) is tuple:
        wanted = len(typing.get_args(here))
        return ConfigError.at(_dotted(key, loc), f"expected a list of {wanted} items, got {len(value)}", source)
    if kind == "literal_error":
        allowed = typing.get_args(here) if typing.get_origin(here) is typing.Literal else ()
        choices = ", ".join(map(repr, allowed)) if allowed else ctx.get("expected", "?")
        return ConfigError.at(_dotted(key, loc), f"must be one of {choices}, got {value!r}", source)
    for bound, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if bound in ctx and kind in _RANGE_ERRORS:
            return ConfigError.at(_dotted(key, loc), f"must be {op} {_bound(ctx[bound])}, got {value!r}", source)
    if kind == "finite_number":
        return ConfigError.at(_dotted(key, loc), f"expected a finite number, got {value!r}", source)
    if kind == "missing":
        return ConfigError.at(_dotted(key, loc), "required key is missing", source)
    expected = next((words for prefix, words in _EXPECTED if kind.startswith(prefix)), None)
    if expected is None:  # anything else: pydantic's own sentence, kept to its first line
        expected = first["msg"].splitlines()[0].replace("Input should be ", "")
    return ConfigError.at(_dotted(key, loc), f"expected {expected}, got {_describe(value)}", source)


_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
#: pydantic error types (by prefix) -> what the key wanted, in the words of this project's messages
_EXPECTED = (("bool", "true or false"), ("int", "an integer"), ("float", "a number"), ("string", "a string"),
             ("list", "a list"), ("tuple", "a list"), ("dict", "a mapping"), ("dataclass", "a mapping of keys"),
             ("model", "a mapping of keys"))


def _yaml_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``5e-5``, with no dot, as a string: take it as the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: A number for a config key: an int or float, or a string spelling one (see `_yaml_number`);
#: never a bool, NaN or infinity (they would pass any ``> 0`` check).
Number = Annotated[float, BeforeValidator(_yaml_number), Strict(), AllowInfNan(False)]
#: An integer: not a bool, not 2.5, not the string "2".
Integer = StrictInt
#: true or false: not 1, not "yes".
Flag = StrictBool


# ------------------------------------------------------------------------------- type walking
def _dotted(key: str, loc: tuple[Any, ...]) -> str:
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else _join(key, str(part))
    return key


def _hints(cls: type) -> dict[str, Any]:
    return {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _strip(tp: Any) -> Any:
    """`tp` without ``Annotated[...]`` and without ``| None``."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        stripped = _strip_optional(tp)
        if stripped is tp:
            return tp
        tp = stripped


def _type_at(cls: type, loc: tuple[Any, ...]) -> Any:
    """The annotation at `loc` inside dataclass `cls` (None where it cannot be told)."""
    tp: Any = cls
    for part in loc:
        tp = _strip(tp)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if _is_section(tp) and isinstance(part, str):
            tp = _hints(tp).get(part)
        elif origin is list and args:
            tp = args[0]
        elif origin is tuple and args and isinstance(part, int):
            tp = args[0] if len(args) == 2 and args[1] is Ellipsis else (args[part] if part < len(args) else None)
        elif origin is dict and args:
            tp = args[1]
        else:
            return None
        if tp is None:
            return None
    return _strip(tp)


def _bound(limit: float) -> str:
    return str(limit) if isinstance(limit, int) else f"{limit:g}"
