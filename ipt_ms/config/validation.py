"""Checking a config with pydantic v2, and its report as one `ConfigError` line naming the key."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ipt_ms.config.fields import ConfigError, _describe, _join, _strip_optional

T = TypeVar("T")


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
