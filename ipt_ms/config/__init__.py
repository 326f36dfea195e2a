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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ipt_ms.config.fields import ConfigError, Flag, Integer, Number, _join, option
from ipt_ms.config.validation import from_dict
from ipt_ms.config.yaml_source import apply_overrides, load_yaml, parse_override

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
