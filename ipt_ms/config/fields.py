"""The vocabulary of a config dataclass: `ConfigError`, `option` limits, and the strict
value types `Flag`, `Integer`, `Number` (pydantic's lax mode would take 1 for true)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Union

from pydantic import AllowInfNan, BeforeValidator, Strict, StrictBool, StrictInt

from ipt_ms.errors import IPTError


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


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _strip_optional(tp: Any) -> Any:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or (hasattr(types, "UnionType") and origin is getattr(types, "UnionType", None))
