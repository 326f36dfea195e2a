"""Reading weights files (.pt/.pth, .safetensors, .ckpt) into official-keyed numpy arrays.

Whatever the file's key layout (official, this package's MindSpore names, or the model zoo's,
see `ipt_ms.convert.layout`), it is renamed to the official keys on reading. Reading never
trusts a file's own sizes: a path that is not a regular file, an empty file, content that does
not match the extension, a tensor whose shape its data does not back, a recorded architecture
its tensors do not have, and non-finite values are each refused with one line naming the file
(and key). PyTorch files are read with ``weights_only=True``: never unpickled.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.convert.formats import (
    SPEC_METADATA_KEY,
    TORCH_METADATA_ENTRY,
    TORCH_METADATA_NAMES,
    check_content_matches,
    check_weights_path,
)
from ipt_ms.convert.infer import infer_spec
from ipt_ms.convert.keymap import (
    TORCH_ONLY_BUFFERS,
    ZOO_ABSENT,
    ZOO_PRETRAIN_TASKS,
    check_shapes,
    mean_shift_arrays,
    reorder_tasks,
)
from ipt_ms.convert.layout import LAYOUTS, unpack
from ipt_ms.errors import IPTError, first_line
from ipt_ms.fileio import note_input
from ipt_ms.provenance import PROVENANCE_METADATA_KEY, parse_record
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import PRETRAIN_SCALES, PRETRAIN_TASKS

_WRAPPER_KEYS = ("state_dict", "model")


@dataclass


class WeightFile:
    """A read weights file: its network arrays under the official keys, and what the file was."""

    path: Path
    arrays: dict[str, np.ndarray]  # official key -> array
    layout: str  # see ipt_ms.convert.layout.LAYOUTS
    spec: IPTSpec | None  # architecture recorded in the file, if any
    file_keys: dict[str, str] = field(default_factory=dict)  # official key -> key in the file
    task_names: tuple[str, ...] | None = None  # names the layout implies (zoo 6-task files)
    training: dict | None = None  # step, epoch, ... of a training checkpoint
    unexpected: list[str] = field(default_factory=list)  # file keys no layout rule accounts for
    notes: list[str] = field(default_factory=list)  # what reading changed, for `ipt-ms info`
    heads_assumed: bool = False  # resolve_spec took the official 12 heads (the file cannot tell)
    provenance: dict | None = None  # where the weights came from (ipt_ms.provenance), if recorded

    @property
    def source(self) -> str:
        return repr(str(self.path))

    def describe_layout(self) -> str:
        text = f"layout: {LAYOUTS[self.layout]}" + (", architecture recorded in the file" if self.spec else "")
        if self.training:
            extra = [f"{k} {self.training[k]}" for k in ("run", "global_step", "epoch") if k in self.training]
            text += (f"\n{self.training['kind']}" + (f": {', '.join(extra)}" if extra else "")
                     + f" ({self.training['optimizer_entries']} optimizer/loss-scale entries not used)")
            text += "\n" + self.describe_variant()
        return "\n".join([text] + [f"note: {n}" for n in self.notes])

    def describe_variant(self) -> str:
        """One line: which of a training checkpoint's weight sets was read, and what else it holds."""
        if not self.training:
            return ""
        if self.training.get("variant") == "ema":
            return (f"weights: both the moving averages (EMA, {self.training['averages']} tensors) and the raw "
                    "weights are present; using the EMA weights, as validation and the exported model.ckpt do "
                    "(--weights-variant raw for the raw ones)")
        if self.training.get("averages"):
            return ("weights: both the moving averages (EMA) and the raw weights are present; using the raw "
                    "weights (--weights-variant raw)")
        return "weights: the raw training weights (the run kept no moving averages)"


def read_weight_file(path: str | Path, variant: str | None = None) -> WeightFile:
    """Read any supported weights file into official-keyed arrays (not yet checked against a spec).

    `variant` picks an ipt-ms training checkpoint's weight set: "ema" (its moving averages),
    "raw", or None (the averages when present, as validation and export use them)."""
    path = check_weights_path(path)
    note_input(path)  # no output of this command may replace it
    suffix = path.suffix.lower()
    check_content_matches(path)
    if suffix == ".safetensors":
        entries, metadata = _read_safetensors(path)
    elif suffix in (".pt", ".pth"):
        entries, metadata = _read_torch_pickle(path)
    else:
        entries = read_ms_checkpoint(path)
        metadata = {k: v for k, v in entries.items() if isinstance(v, str)}
    spec_text, provenance_text = metadata.get(SPEC_METADATA_KEY), metadata.get(PROVENANCE_METADATA_KEY)
    source = repr(str(path))
    unpacked = unpack(entries, source, variant)
    if not unpacked.arrays:
        raise IPTError(f"{source} holds no tensors")
    weights = WeightFile(path, unpacked.arrays, unpacked.layout, None, unpacked.file_keys,
                         training=unpacked.training, unexpected=unpacked.unexpected)
    if isinstance(spec_text, str):
        weights.spec = recorded_spec(spec_text, weights)
    if isinstance(provenance_text, str):
        weights.provenance = parse_record(provenance_text, source)
    if weights.layout in ("zoo", "zoo-hub") and weights.spec is None:
        _prepare_zoo(weights)
    return weights


def _read_torch_pickle(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import torch

    try:
        with warnings.catch_warnings():  # torch warns (on stderr) about unusual pickles before refusing them
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise IPTError(f"refused to load {str(path)!r}: it holds Python objects or code that safe "
                           "loading (torch.load weights_only=True) does not allow") from err
        raise IPTError(f"cannot read {str(path)!r}: not a PyTorch weights file, or corrupt "
                       f"({first_line(err)})") from err
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError, KeyError, IndexError) as err:
        raise IPTError(f"cannot read {str(path)!r}: not a PyTorch weights file, or truncated "
                       f"({first_line(err)})") from err
    state, metadata = _unwrap_state_dict(obj, path)
    entry = (metadata or {}).get(TORCH_METADATA_ENTRY, {})
    entry = entry if isinstance(entry, dict) else {}
    recorded = {key: entry.get(name) for key, name in TORCH_METADATA_NAMES.items() if isinstance(entry.get(name), str)}
    arrays = {}
    total, limit = 0, 8 * path.stat().st_size + (64 << 20)
    for key, value in state.items():
        if not isinstance(key, str):
            raise IPTError(f"{str(path)!r}: entry {key!r} is not named by a string")
        if not isinstance(value, torch.Tensor):
            raise IPTError(f"{str(path)!r}: entry {key!r} is a {type(value).__name__}, not a tensor")
        _check_backed(value, key, path)
        total += value.numel() * value.element_size()
        if total > limit:  # tensors sharing storage; saved weights hold each array once (tied: a few times)
            raise IPTError(f"{str(path)!r}: its tensors would take over {limit:,} bytes from a file of "
                           f"{path.stat().st_size:,} (views sharing storage); not a weights file")
        if value.dtype == torch.bfloat16:
            value = value.float()
        arrays[key] = value.detach().cpu().contiguous().numpy()
    return arrays, recorded


def _check_backed(tensor, key: str, path: Path) -> None:
    """Refuse a tensor whose shape needs more data than its storage holds (zero or overlapping strides).

    Saved weights never look like this; materialising one could need terabytes."""
    needed = tensor.numel() * tensor.element_size()
    held = tensor.untyped_storage().nbytes()
    if needed > held:
        raise IPTError(f"{str(path)!r}: entry {key!r} is a {tuple(tensor.shape)} tensor backed by only {held:,} "
                       "bytes of data (zero or overlapping strides); not a weights file")


def _unwrap_state_dict(obj, path: Path) -> tuple[dict, dict | None]:
    """Accept a bare state_dict or one under 'state_dict'/'model'; returns it and its `_metadata`."""
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
    return obj, metadata if isinstance(metadata, dict) else None


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise IPTError(f"cannot read {str(path)!r}: not a safetensors file, or corrupt ({first_line(err)})") from err
    return arrays, metadata


def read_ms_checkpoint(path: str | Path) -> dict:
    """Everything a MindSpore .ckpt holds: arrays and append_dict strings (IPTError naming the file)."""
    from ipt_ms.convert.ms_checkpoint import read_ckpt

    return read_ckpt(path)


#: architecture options the tensors themselves determine (checked against a recorded spec)
_SHAPE_FIELDS = ("scales", "n_feats", "n_colors", "patch_dim", "num_layers", "num_queries", "no_norm", "no_mlp",
                 "no_pos")


def recorded_spec(text: str, weights: WeightFile) -> IPTSpec:
    """The architecture a file records, refused unless its tensors have exactly that architecture.

    Checked before anything is built from it, so metadata cannot make the reader allocate
    for layers or tasks the file does not hold."""
    try:
        spec = IPTSpec.from_json(text)
    except IPTError as err:
        reason = str(err).removeprefix("invalid IPT architecture: ")
        raise IPTError(f"{weights.source}: recorded architecture ({SPEC_METADATA_KEY}) is invalid: {reason}") from None
    shapes = {k: tuple(v.shape) for k, v in weights.arrays.items()}
    implied = infer_spec(shapes, num_heads=spec.num_heads, source=weights.source)
    fields = _SHAPE_FIELDS + (() if spec.no_mlp and spec.no_pos else ("patch_size",))
    differences = [f"{f}={getattr(spec, f)!r} but the tensors hold {getattr(implied, f)!r}" for f in fields
                   if getattr(spec, f) != getattr(implied, f)]
    if differences:
        raise IPTError(f"{weights.source}: recorded architecture ({SPEC_METADATA_KEY}) does not match its tensors: "
                       + "; ".join(differences[:3]))
    return spec


def _prepare_zoo(weights: WeightFile) -> None:
    """Model-zoo files: keep the heads the zoo network can run, and give the 6-task model our names/order.

    Zoo code before 2022-09 always built 6 heads and tails (scales 2,3,4,1,1,1) whatever
    its query count; one integer picks head, tail and query row together, so a head
    without a query row can never run and is not read. A full 6-task file's heads are
    in the zoo's order (x2, x3, x4, derain, sigma30, sigma50) and are put in ours.
    """
    arrays = weights.arrays
    heads = sorted({int(k.split(".")[1]) for k in arrays if k.startswith("head.") and k.split(".")[1].isdigit()})
    scales = tuple(_tail_scale(arrays, i) for i in heads)
    query = arrays.get("body.query_embed.weight")
    queries = query.shape[0] if query is not None and query.ndim == 2 else None
    if len(heads) != len(PRETRAIN_SCALES) or scales != PRETRAIN_SCALES or queries is None:
        return
    if queries < len(heads):
        dropped = [i for i in heads if i >= queries]
        for key in [k for k in arrays if k.split(".")[0] in ("head", "tail") and int(k.split(".")[1]) in dropped]:
            del arrays[key]
        weights.task_names = ZOO_PRETRAIN_TASKS[:queries]
        weights.notes.append(f"older zoo code (6 heads and tails, {queries} query row(s)): heads/tails "
                             f"{dropped[0]}-{dropped[-1]} have no query row, cannot run in the zoo network, and "
                             "were not read")
        return
    order = [ZOO_PRETRAIN_TASKS.index(name) for name in PRETRAIN_TASKS]
    weights.arrays = reorder_tasks(arrays, order)
    weights.task_names = PRETRAIN_TASKS
    weights.notes.append("6-task zoo heads in the zoo's order (x2, x3, x4, derain, sigma 30, sigma 50) "
                         "were put in ipt-ms order (" + ", ".join(PRETRAIN_TASKS) + ")")


def _tail_scale(arrays: dict, i: int) -> int:
    stages = [k for k in arrays if k.startswith(f"tail.{i}.0.") and k.endswith(".weight")]
    if not stages:
        return 1
    first = arrays[min(stages)]
    ratio = first.shape[0] // max(1, arrays.get(f"head.{i}.0.weight", first).shape[0])
    return 3 if ratio == 9 else 2 ** len(stages)


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
    shapes = {k: tuple(v.shape) for k, v in weights.arrays.items()}
    names = task_names or (list(weights.task_names) if weights.task_names else None)
    weights.heads_assumed = num_heads is None  # said by official_state once the file has passed every check
    return infer_spec(shapes, num_heads=num_heads or 12, task_names=names, pos_every=bool(pos_every),
                      patch_size=patch_size, source=weights.source)


def load_weights(path: str | Path, weights_variant: str | None = None,
                 **overrides) -> tuple[IPTSpec, dict[str, np.ndarray]]:
    """Read any supported weights file; return its spec and official-keyed arrays (checked).

    `weights_variant`: "ema" or "raw" weights of an ipt-ms training checkpoint (default: the
    moving averages when it has them; see `read_weight_file`). Overrides: num_heads,
    task_names, pos_every, patch_size (see `resolve_spec`).
    """
    weights = read_weight_file(path, weights_variant)
    spec = resolve_spec(weights, **overrides)
    state = official_state(weights, spec)
    log_weights_variant(weights)
    return spec, state


_VARIANT_LOGGED: set[tuple[str, str]] = set()


def log_weights_variant(weights: WeightFile, hint: str | None = None) -> None:
    """Log once per file and variant which weight set of a training checkpoint is used
    (`hint` replaces the --weights-variant advice where that option does not exist)."""
    if not weights.training or (str(weights.path), weights.training.get("variant")) in _VARIANT_LOGGED:
        return
    _VARIANT_LOGGED.add((str(weights.path), weights.training.get("variant")))
    text = weights.describe_variant()
    if hint and weights.training.get("averages"):
        text = text.split(" (--weights-variant")[0] + f" ({hint})"
    logging.getLogger("ipt_ms.convert").info("%s: %s", weights.path.name, text)


def official_state(weights: WeightFile, spec: IPTSpec) -> dict[str, np.ndarray]:
    """A read file's arrays under the official keys in the official order, checked against `spec`.

    Missing, unexpected and mis-shaped keys are listed (under their official names); the
    arrays the zoo layout lacks (mean shift) and the `position_ids` buffer are rebuilt;
    non-finite values are refused naming the first such key as the file names it.
    """
    arrays = dict(weights.arrays)
    if weights.layout in ("zoo", "zoo-hub"):
        for key in ZOO_ABSENT:
            if key in arrays:  # the layout detection refuses these; kept as a guard
                raise IPTError(f"{weights.source}: a model-zoo file cannot hold {key!r}")
        arrays.update(mean_shift_arrays(spec))
    expected = spec.torch_state_shapes()
    found = {k: tuple(v.shape) for k, v in arrays.items()}
    found.update({k: () for k in weights.unexpected})
    check_shapes(found, expected, tolerate_missing=TORCH_ONLY_BUFFERS,
                 context=f"{weights.source} ({LAYOUTS[weights.layout]} layout; keys under official names)")
    _check_finite(arrays, weights)
    if weights.heads_assumed:  # the shapes cannot tell; say what is assumed rather than assume silently
        logging.getLogger("ipt_ms.convert").warning(
            "%s does not record its number of attention heads: assuming 12, as in every official release "
            "(pass --num-heads if it was trained with another)", weights.path.name)
    out = {}
    for key, shape in expected.items():
        if key in TORCH_ONLY_BUFFERS and key not in arrays:
            out[key] = np.arange(shape[-1], dtype=np.int64).reshape(shape)
        else:
            out[key] = arrays[key]
    return out


def _check_finite(arrays: dict[str, np.ndarray], weights: WeightFile) -> None:
    bad = [k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.isfinite(v).all()]
    if bad:
        value = arrays[bad[0]]
        nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
        raise IPTError(f"{weights.source}: weights are not finite: {weights.file_keys.get(bad[0], bad[0])!r} holds "
                       f"{nan} NaN and {inf} inf value(s)" + (f" ({len(bad)} tensors affected)" if len(bad) > 1 else "")
                       + "; refusing to load them")


def state_digest(spec: IPTSpec, state: dict[str, np.ndarray]) -> str:
    """sha256 of loaded weights' content: architecture, then each official key's dtype, shape and values."""
    digest = hashlib.sha256(spec.to_json().encode())
    for key in sorted(state):
        value = np.ascontiguousarray(state[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
