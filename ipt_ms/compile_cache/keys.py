"""What identifies a compiled graph (`graph_key`): versions, device and compile options, ipt-ms's code,
the network's cells and parameters, and the call's shapes and constants. See `ipt_ms.compile_cache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import platform
from pathlib import Path
from typing import Any

FORMAT = 2  # bump when the layout or the key changes meaning (2: entries record their key)
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # ipt_ms/
_source_hashes: dict[str, str] = {}


# ------------------------------------------------------------------------------------ keys
def _file_hash(path: str) -> str:
    cached = _source_hashes.get(path)
    if cached is None:
        try:
            cached = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            cached = "unreadable"
        _source_hashes[path] = cached
    return cached


def code_digest() -> str:
    """Hash of every ipt-ms source file (computed once per process)."""
    key = "<ipt_ms package>"
    if key not in _source_hashes:
        digest = hashlib.sha256()
        for path in sorted(_PACKAGE_ROOT.rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
            digest.update(_file_hash(str(path)).encode())
        _source_hashes[key] = digest.hexdigest()
    return _source_hashes[key]


# Cell attributes that MindSpore changes as it runs (not configuration).
_VOLATILE = {"arguments_key", "is_top_cell", "phase", "compile_phase", "current_phase", "cell_init_args",
             "create_time", "total_instance_count", "param_prefix", "parameter_layout_dict",
             "parallel_parameter_name_list", "phase_prefix", "sequence_modified",
             "init_tensor"}  # nn.Embedding's random initial table (construct reads the parameter)
# Private Cell attributes that do change the compiled graph.
_PRIVATE_CONFIG = ("_jit_config_dict", "_amp_level", "_func_graph_flags", "_has_config_recompute", "_recompute_cell",
                   "_dynamic_shape_inputs", "_auto_prefix")


def _describe(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of a configuration value (what Graph mode bakes into a graph)."""
    from mindspore import Parameter, Tensor
    from mindspore.ops import Primitive

    if depth > 6:
        return type(value).__qualname__
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Parameter):
        return ["param", value.name]
    if isinstance(value, Tensor):
        array = value.asnumpy()
        return ["tensor", str(array.dtype), list(array.shape), hashlib.sha256(array.tobytes()).hexdigest()]
    if isinstance(value, (tuple, list)):
        return [type(value).__name__] + [_describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Primitive):
        return ["primitive", value.name, _describe(dict(value.attrs), depth + 1)]
    if hasattr(value, "__dataclass_fields__"):
        return [type(value).__qualname__, repr(value)]
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "tobytes"):  # numpy
        return ["array", str(value.dtype), list(value.shape), hashlib.sha256(value.tobytes()).hexdigest()]
    kind = type(value)
    return ["object", f"{kind.__module__}.{kind.__qualname__}", getattr(value, "__qualname__", None)]


def _class_source(cls: type) -> str:
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        path = None
    if not path:
        return "no source"
    path = os.path.realpath(path)
    return _file_hash(path)


def _cell_description(cell) -> list:
    """Every sub-cell's class, source hash, configuration attributes and parameters."""
    from mindspore import nn

    out = []
    for name, sub in cell.cells_and_names():
        cls = type(sub)
        attrs = {}
        for key, value in vars(sub).items():
            if key in _VOLATILE or isinstance(value, nn.Cell):
                continue
            if key.startswith("_") and key not in _PRIVATE_CONFIG:
                continue
            attrs[key] = _describe(value)
        params = [(p.name, list(p.shape), str(p.dtype), bool(p.requires_grad))
                  for p in sub.get_parameters(expand=False)]
        out.append([name, f"{cls.__module__}.{cls.__qualname__}", _class_source(cls), attrs, params])
    return out


def _describe_argument(value: Any) -> Any:
    from mindspore import Tensor

    if isinstance(value, Tensor):
        return ["tensor", list(value.shape), str(value.dtype)]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return ["array", list(value.shape), str(value.dtype)]
    if isinstance(value, (tuple, list)):
        return [type(value).__name__] + [_describe_argument(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_argument(v) for k, v in sorted(value.items())}
    return _describe(value)


def call_key(cell, args: tuple, kwargs: dict) -> str:
    """What makes one call of `cell` compile a graph of its own: argument shapes/values and the phase."""
    text = json.dumps([_describe_argument(list(args)), _describe_argument(kwargs), bool(cell.training),
                       str(getattr(cell, "phase", ""))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _context_description() -> dict:
    import mindspore as ms

    context = {}
    for key in ("mode", "device_target", "jit_config", "enable_graph_kernel", "graph_kernel_flags",
                "memory_optimize_level", "jit_level", "runtime_num_threads"):
        with contextlib.suppress(ValueError, RuntimeError, TypeError):
            context[key] = _describe(ms.get_context(key))
    context["env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("MS_DEV_", "MS_ENABLE_"))}
    return context


def graph_key(cell, args: tuple, kwargs: dict) -> str:
    """The store key of the graph `cell(*args, **kwargs)` compiles (see the module docstring)."""
    import mindspore as ms

    text = json.dumps({
        "format": FORMAT,
        "mindspore": ms.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "code": code_digest(),
        "context": _context_description(),
        "cell": _cell_description(cell),
        "call": call_key(cell, args, kwargs),
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
