"""Writing official-keyed weights: ipt-ms files with their architecture inside, model-zoo .ckpt, conversion.

The architecture travels inside the files this package writes: .ckpt (append_dict entry),
.safetensors (metadata) and .pt/.pth (the state_dict's `_metadata` mapping, which
`load_state_dict` consults only for module prefixes, so the official code still loads our .pt
files with strict=True); so does where the weights came from (`ipt_ms.provenance`), beside it in
the same channel. Every write is atomic (`ipt_ms.fileio.atomic_output`) and checked against the
architecture before anything is written.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ipt_ms.convert.formats import (
    SPEC_METADATA_KEY,
    TORCH_METADATA_ENTRY,
    TORCH_METADATA_NAMES,
    WRITE_LAYOUTS,
    weights_format,
)
from ipt_ms.convert.keymap import (
    TORCH_ONLY_BUFFERS,
    check_shapes,
    mean_shift_arrays,
    reorder_tasks,
    torch_to_mindspore,
    zoo_head_order,
    zoo_key,
)
from ipt_ms.convert.readers import official_state, read_weight_file, resolve_spec
from ipt_ms.convert.single_task import select_task
from ipt_ms.errors import IPTError
from ipt_ms.fileio import OVERWRITE_HINT, atomic_output, check_output_file
from ipt_ms.provenance import PROVENANCE_METADATA_KEY, record_json
from ipt_ms.runtime import mindspore_log_silenced
from ipt_ms.spec import IPTSpec


def save_weights(path: str | Path, state: dict[str, np.ndarray], spec: IPTSpec, layout: str = "ipt-ms",
                 provenance: dict | None = None, overwrite: bool = False) -> None:
    """Write official-keyed arrays in the format the extension names, atomically.

    An existing file at `path` is replaced only with `overwrite` (`ipt_ms.fileio.atomic_output`).

    `layout` "ipt-ms" (default) writes this package's files with the architecture and
    `provenance` (an `ipt_ms.provenance` record) inside; "zoo" / "zoo-hub" write a
    MindSpore model-zoo .ckpt (see `zoo_state`), which carries no metadata.
    """
    path = Path(path)
    naming = weights_format(path)
    check_output_file(path)
    if layout not in WRITE_LAYOUTS:
        raise IPTError(f"unknown layout {layout!r}; choose one of {', '.join(WRITE_LAYOUTS)}")
    if layout != "ipt-ms":
        if naming != "mindspore":
            raise IPTError("the model-zoo layout is a MindSpore checkpoint: name the output .ckpt, "
                           f"not {path.suffix!r}")
        write_ms_checkpoint(path, zoo_state(state, spec, hub=layout == "zoo-hub"), {}, overwrite=overwrite)
        return
    ms_params = torch_to_mindspore(state, spec)  # validates before anything is written
    metadata = {SPEC_METADATA_KEY: spec.to_json()}
    if provenance is not None:
        metadata[PROVENANCE_METADATA_KEY] = record_json(provenance)
    if naming == "mindspore":
        write_ms_checkpoint(path, ms_params, metadata, overwrite=overwrite)
        return
    official = {k: (state[k] if k in state else np.arange(shape[-1], dtype=np.int64).reshape(shape))
                for k, shape in spec.torch_state_shapes().items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in official.items()}, str(tmp),
                      metadata={**metadata, "format": "pt"})
    else:
        import torch

        tensors = OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in official.items())
        entry = {name: metadata[key] for key, name in TORCH_METADATA_NAMES.items() if key in metadata}
        tensors._metadata = OrderedDict([("", {"version": 1}), (TORCH_METADATA_ENTRY, entry)])
        with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp:
            torch.save(tensors, tmp)


def zoo_state(state: dict[str, np.ndarray], spec: IPTSpec, hub: bool = False) -> dict[str, np.ndarray]:
    """Official-keyed arrays -> a model-zoo file's entries (zoo names, zoo head order, no mean shift).

    Refused when the mean-shift tensors are not the standard constants: the zoo network
    has no mean-shift cells (its scripts subtract and add 255 * (0.4488, 0.4371, 0.4040)).
    """
    check_shapes({k: tuple(v.shape) for k, v in state.items()}, spec.torch_state_shapes(),
                 tolerate_missing=TORCH_ONLY_BUFFERS, context="weights")
    default = IPTSpec()
    if (spec.rgb_range, spec.rgb_mean) != (default.rgb_range, default.rgb_mean):
        raise IPTError(f"cannot write the model-zoo layout: the model uses rgb_range {spec.rgb_range} and mean "
                       f"{list(spec.rgb_mean)}; the zoo network has no mean-shift cells and its scripts assume "
                       f"{default.rgb_range} and {list(default.rgb_mean)}")
    standard = mean_shift_arrays(default)
    for key, value in standard.items():
        if state[key].shape != value.shape or not np.allclose(state[key], value, rtol=0, atol=1e-4):
            raise IPTError(f"cannot write the model-zoo layout: {key} is {np.ravel(state[key]).round(4).tolist()}, "
                           "not the standard constants; the zoo network has no mean-shift cells to hold it")
    ordered = reorder_tasks(state, zoo_head_order(spec.task_names))
    out = {}
    for key in spec.torch_state_shapes():
        name = zoo_key(key, hub=hub)
        if name is not None:
            out[name] = ordered[key]
    return out


def write_ms_checkpoint(path: str | Path, params: dict[str, np.ndarray], metadata: dict[str, str],
                        overwrite: bool = False) -> None:
    """Write a MindSpore .ckpt atomically: parameters by name, plus string entries (append_dict).

    The one .ckpt writer (weights and training checkpoints). `atomic_output` removes
    MindSpore's own ``.tmp`` file on failure, gives the file the umask's permissions
    (MindSpore makes it read-only for the owner) and turns a full disk into one line;
    MindSpore's log line about the failure is kept off the terminal.
    """
    import mindspore as ms

    entries = [{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in params.items()]
    with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp, mindspore_log_silenced():
        ms.save_checkpoint(entries, str(tmp), append_dict=metadata or None)


def convert_file(src: str | Path, dst: str | Path, *, layout: str = "ipt-ms", task: str | None = None,
                 overwrite: bool = False, **overrides) -> IPTSpec:
    """Convert a weights file to the format of `dst`'s extension, in `layout`.

    `task` keeps one task (head, tail, query row) as a single-task model, as the zoo's
    evaluation and mindediting load them. The output records that it was converted from
    `src`, with `src`'s own provenance record (`ipt_ms.provenance`) nested.
    """
    from ipt_ms.provenance import converted

    weights_format(dst)  # reject an unknown destination before reading anything
    if layout not in WRITE_LAYOUTS:
        raise IPTError(f"unknown layout {layout!r}; choose one of {', '.join(WRITE_LAYOUTS)}")
    check_output_file(dst)
    if Path(dst).resolve() == Path(src).resolve() or (
            Path(dst).is_file() and Path(src).is_file() and os.path.samefile(src, dst)):
        raise IPTError(f"{str(dst)!r} is the source file; write the conversion to another file")
    source = read_weight_file(src)
    spec = resolve_spec(source, **overrides)
    state = official_state(source, spec)
    provenance = converted(src, source.layout, source.provenance, task)
    if task is not None:
        spec = spec.name_placeholder_task(task)
        spec, state = select_task(spec, state, task)
    save_weights(dst, state, spec, layout=layout, provenance=provenance, overwrite=overwrite)
    return spec


def describe(spec: IPTSpec) -> str:
    """One-paragraph human summary of an architecture."""
    tasks = ", ".join(f"{n} (x{s})" for n, s in zip(spec.task_names, spec.scales))
    flags = [f for f in ("no_norm", "no_mlp", "pos_every", "no_pos") if getattr(spec, f)]
    return (f"IPT: {spec.num_parameters():,} parameters; tasks: {tasks}; n_feats {spec.n_feats}, "
            f"patch {spec.patch_size}px / token {spec.patch_dim}px ({spec.num_patches} tokens x "
            f"{spec.embedding_dim}), {spec.num_layers}+{spec.num_layers} layers, {spec.num_heads} heads, "
            f"{spec.num_queries} queries" + (f"; {', '.join(flags)}" if flags else ""))

