"""Read and write IPT weights in PyTorch (.pt/.pth/.safetensors) and MindSpore (.ckpt) files.

Everything goes through numpy arrays keyed like the official PyTorch state_dict, checked
against the architecture before anything is written. The architecture travels inside the
file: .ckpt (append_dict entry), .safetensors (metadata) and .pt/.pth (the state_dict's
`_metadata` mapping, which `load_state_dict` consults only for module prefixes, so the
official code still loads our .pt files with strict=True). Files without it (the official
releases) have their architecture inferred from the shapes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipt_ms.convert.infer import infer_spec
from ipt_ms.convert.keymap import mindspore_to_torch, torch_key, torch_to_mindspore
from ipt_ms.errors import IPTError, first_line
from ipt_ms.fileio import atomic_output, check_output_file
from ipt_ms.runtime import mindspore_log_silenced
from ipt_ms.spec import IPTSpec

TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")
MINDSPORE_SUFFIXES = (".ckpt",)
SPEC_METADATA_KEY = "ipt_spec"
_WRAPPER_KEYS = ("state_dict", "model")
_PREFIXES = ("module.", "model.")
TORCH_METADATA_ENTRY = "ipt_ms"  # key in a state_dict's _metadata; matches no IPT module


@dataclass
class WeightFile:
    """Raw contents of a weights file: arrays in the file's own naming, plus its metadata."""

    path: Path
    arrays: dict[str, np.ndarray]
    naming: str  # "torch" or "mindspore"
    spec: IPTSpec | None  # architecture recorded in the file, if any


def weights_format(path: str | Path) -> str:
    """'torch' or 'mindspore' from the file extension; IPTError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix in MINDSPORE_SUFFIXES:
        return "mindspore"
    raise IPTError(f"{str(path)!r}: unknown weights extension {suffix!r} "
                   f"(expected one of {', '.join(TORCH_SUFFIXES + MINDSPORE_SUFFIXES)})")


# ------------------------------------------------------------------------------- reading
def read_weight_file(path: str | Path) -> WeightFile:
    path = Path(path)
    naming = weights_format(path)
    if not path.is_file():
        raise IPTError(f"weights file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        arrays, spec = _read_safetensors(path)
    elif naming == "torch":
        arrays, spec = _read_torch_pickle(path)
    else:
        arrays, spec = _read_ckpt(path)
    if not arrays:
        raise IPTError(f"{str(path)!r} holds no tensors")
    return WeightFile(path, arrays, naming, spec)


def _read_torch_pickle(path: Path) -> tuple[dict[str, np.ndarray], IPTSpec | None]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise IPTError(f"refused to load {str(path)!r}: it holds Python objects or code that safe "
                           "loading (torch.load weights_only=True) does not allow") from err
        raise IPTError(f"cannot read {str(path)!r}: not a PyTorch weights file, or corrupt ({err})") from err
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        raise IPTError(f"cannot read {str(path)!r}: not a PyTorch weights file, or truncated "
                       f"({first_line(err)})") from err
    state, metadata = _unwrap_state_dict(obj, path)
    spec_json = (metadata or {}).get(TORCH_METADATA_ENTRY, {}).get("spec")
    arrays = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise IPTError(f"{str(path)!r}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.dtype == torch.bfloat16:
            value = value.float()
        arrays[key] = value.detach().cpu().contiguous().numpy()
    return arrays, (IPTSpec.from_json(spec_json) if isinstance(spec_json, str) else None)


def _unwrap_state_dict(obj, path: Path) -> tuple[dict, dict | None]:
    """Accept a bare state_dict or one under 'state_dict'/'model', with module./model. prefixes.

    Returns the state and its `_metadata` mapping (if any)."""
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
                continue
        break
    if not isinstance(obj, dict):
        raise IPTError(f"{str(path)!r} holds a {type(obj).__name__}, not a state_dict")
    metadata = getattr(obj, "_metadata", None)
    changed = True
    while changed and obj:
        changed = False
        for prefix in _PREFIXES:
            if all(isinstance(k, str) and k.startswith(prefix) for k in obj):
                obj = {k[len(prefix):]: v for k, v in obj.items()}
                changed = True
    return obj, metadata


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], IPTSpec | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise IPTError(f"cannot read {str(path)!r}: not a safetensors file, or corrupt ({err})") from err
    arrays, _ = _unwrap_state_dict(arrays, path)
    spec = IPTSpec.from_json(metadata[SPEC_METADATA_KEY]) if SPEC_METADATA_KEY in metadata else None
    return arrays, spec


def read_ms_checkpoint(path: str | Path) -> dict:
    """Everything a MindSpore .ckpt holds (parameters and append_dict strings); IPTError naming the file."""
    import mindspore as ms

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ms.load_checkpoint(str(path))
    except Exception as err:  # MindSpore raises ValueError/RuntimeError/TypeError for bad files
        raise IPTError(f"cannot read {str(path)!r}: not a MindSpore checkpoint, or corrupt "
                       f"({first_line(err)})") from err


def _read_ckpt(path: Path) -> tuple[dict[str, np.ndarray], IPTSpec | None]:
    content = read_ms_checkpoint(path)
    spec = None
    arrays = {}
    for key, value in content.items():
        if key == SPEC_METADATA_KEY and isinstance(value, str):
            spec = IPTSpec.from_json(value)
        elif isinstance(value, str):
            continue  # other string metadata
        elif hasattr(value, "asnumpy") and value.ndim > 0:
            arrays[key] = value.asnumpy()
    return arrays, spec


# ------------------------------------------------------------------------------- resolving
def resolve_spec(weights: WeightFile, *, num_heads: int | None = None, task_names: list[str] | None = None,
                 pos_every: bool | None = None, patch_size: int | None = None) -> IPTSpec:
    """The file's architecture: recorded if present, else inferred; options override."""
    if weights.spec is not None:
        spec = weights.spec
        changes = {}
        if num_heads is not None:
            changes["num_heads"] = num_heads
        if task_names:
            changes["task_names"] = tuple(task_names)
        if pos_every is not None:
            changes["pos_every"] = pos_every
        return spec.replace(**changes) if changes else spec
    shapes = {(torch_key(k) if weights.naming == "mindspore" else k): tuple(v.shape)
              for k, v in weights.arrays.items()}
    if num_heads is None:  # the shapes cannot tell; say what is assumed rather than assume silently
        logging.getLogger("ipt_ms.convert").warning(
            "%s does not record its number of attention heads: assuming 12, as in every official release "
            "(pass --num-heads if it was trained with another)", weights.path.name)
    return infer_spec(shapes, num_heads=num_heads or 12, task_names=task_names, pos_every=bool(pos_every),
                      patch_size=patch_size, source=repr(str(weights.path)))


def load_weights(path: str | Path, **overrides) -> tuple[IPTSpec, dict[str, np.ndarray]]:
    """Read any supported weights file; return its spec and official-keyed arrays (checked).

    Overrides: num_heads, task_names, pos_every, patch_size (see `resolve_spec`).
    """
    weights = read_weight_file(path)
    spec = resolve_spec(weights, **overrides)
    return spec, official_state(weights, spec)


def official_state(weights: WeightFile, spec: IPTSpec) -> dict[str, np.ndarray]:
    """A read file's arrays under the official keys, checked against `spec` (a mismatch lists the keys)."""
    if weights.naming == "mindspore":
        return mindspore_to_torch(weights.arrays, spec)
    return mindspore_to_torch(torch_to_mindspore(weights.arrays, spec), spec)


def state_digest(spec: IPTSpec, state: dict[str, np.ndarray]) -> str:
    """sha256 of loaded weights' content: architecture, then each official key's dtype, shape and values."""
    digest = hashlib.sha256(spec.to_json().encode())
    for key in sorted(state):
        value = np.ascontiguousarray(state[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------- writing
def save_weights(path: str | Path, state: dict[str, np.ndarray], spec: IPTSpec) -> None:
    """Write official-keyed arrays in the format the extension names, atomically."""
    path = Path(path)
    naming = weights_format(path)
    check_output_file(path)
    ms_params = torch_to_mindspore(state, spec)  # validates before anything is written
    if naming == "mindspore":
        _write_ckpt(path, ms_params, spec)
        return
    official = mindspore_to_torch(ms_params, spec)
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_output(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in official.items()}, str(tmp),
                      metadata={SPEC_METADATA_KEY: spec.to_json(), "format": "pt"})
    else:
        import torch

        tensors = OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in official.items())
        tensors._metadata = OrderedDict([("", {"version": 1}), (TORCH_METADATA_ENTRY, {"spec": spec.to_json()})])
        with atomic_output(path) as tmp:
            torch.save(tensors, tmp)


def write_ms_checkpoint(path: str | Path, params: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a MindSpore .ckpt atomically: parameters by name, plus string entries (append_dict).

    The one .ckpt writer (weights and training checkpoints). `atomic_output` removes
    MindSpore's own ``.tmp`` file on failure, gives the file the umask's permissions
    (MindSpore makes it read-only for the owner) and turns a full disk into one line;
    MindSpore's log line about the failure is kept off the terminal.
    """
    import mindspore as ms

    entries = [{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in params.items()]
    with atomic_output(path) as tmp, mindspore_log_silenced():
        ms.save_checkpoint(entries, str(tmp), append_dict=metadata)


def _write_ckpt(path: Path, params: dict[str, np.ndarray], spec: IPTSpec) -> None:
    write_ms_checkpoint(path, params, {SPEC_METADATA_KEY: spec.to_json()})


def convert_file(src: str | Path, dst: str | Path, **overrides) -> IPTSpec:
    """Convert between PyTorch and MindSpore weight files (direction from the extensions)."""
    weights_format(dst)  # reject an unknown or unwritable destination before reading anything
    check_output_file(dst)
    if Path(dst).is_file() and Path(src).is_file() and os.path.samefile(src, dst):
        raise IPTError(f"{str(dst)!r} is the source file; write the conversion to another file")
    spec, state = load_weights(src, **overrides)
    save_weights(dst, state, spec)
    return spec


def describe(spec: IPTSpec) -> str:
    """One-paragraph human summary of an architecture."""
    tasks = ", ".join(f"{n} (x{s})" for n, s in zip(spec.task_names, spec.scales))
    flags = [f for f in ("no_norm", "no_mlp", "pos_every", "no_pos") if getattr(spec, f)]
    return (f"IPT: {spec.num_parameters():,} parameters; tasks: {tasks}; n_feats {spec.n_feats}, "
            f"patch {spec.patch_size}px / token {spec.patch_dim}px ({spec.num_patches} tokens x "
            f"{spec.embedding_dim}), {spec.num_layers}+{spec.num_layers} layers, {spec.num_heads} heads, "
            f"{spec.num_queries} queries" + (f"; {', '.join(flags)}" if flags else ""))


def spec_json_pretty(spec: IPTSpec) -> str:
    return json.dumps(spec.to_dict(), indent=2, sort_keys=True)
