"""Export an IPT task to ONNX (from MindSpore or from the PyTorch twin) or to MindIR.

`export_weights` is the one call; the pieces sit beside it, one idea a file, and are
re-exported here: what a file records (`metadata`), where files go (`files`), the ONNX
graph's common ending (`onnx_graph`), and the two sides (`mindspore_side`, `torch_side`).

One file holds one task: the task index is a compile-time constant of the network (Graph
mode compiles each task separately), so each export traces `net(x, task_idx)` for one
task. Every file:

* takes `input` (batch, C, P, P) float32 in [0, rgb_range] with a **dynamic batch** and
  returns `output` (batch, C, P*s, P*s); with `with_stages` it also returns every
  intermediate parity stage as `stage/<name>` (for `ipt-ms parity --onnx`);
* records what it is, so nothing else is needed to run it: ONNX `metadata_props` (and
  MindIR `user_info`) hold the architecture (`IPTSpec` JSON), the task name/index/scale,
  the source framework, the opset, a digest of the source weights and their provenance
  (`ipt_ms.provenance`: converted from the weights file, with its own record nested).

Why the pieces look the way they do:

* MindSpore's ONNX exporter bakes every reshape target in as a constant and its
  `dynamic_axes` only relabels the graph input, so the network writes the batch of each
  reshape as -1 (`ipt_ms.models`); here the outputs are relabelled and the stale traced
  shapes (`value_info`) dropped. MindSpore emits opset 11; another `opset` is reached
  with `onnx.version_converter`.
* The twin's `F.fold` exports only as ONNX `Col2Im` (opset >= 18), and the TorchScript
  exporter cannot export it with a dynamic batch, so the twin goes through the dynamo
  exporter (`torch.onnx.export(dynamo=True)`, needs onnxscript) with a symbolic batch.
* MindIR is exported with an input of shape (None, C, P, P), which MindSpore compiles as
  a dynamic-batch graph (MindSpore Lite / serving / `nn.GraphCell(ms.load(...))`).
* MindSpore's exporters refuse file names outside ``[0-9a-zA-Z@_-.:/\\]`` (a space, an
  accent), so they write into a scratch folder with such a name (next to the output when
  its path qualifies, else the system temporary folder) and the result is moved to the
  output path, which may then be any name. Every file reaches its final name through
  `ipt_ms.fileio.atomic_output`: complete or absent, and a full disk is one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.export.files import output_paths
from ipt_ms.export.metadata import (
    EXPORT_FORMAT_VERSION,
    META_FORMAT_VERSION,
    META_OPSET,
    META_PROVENANCE,
    META_SCALE,
    META_SOURCE,
    META_SPEC,
    META_STAGES,
    META_TASK,
    META_TASK_INDEX,
    META_WEIGHTS_DIGEST,
    ExportInfo,
    ExportResult,
    info_from_metadata,
    read_mindir_info,
    read_onnx_info,
)
from ipt_ms.export.mindspore_side import MINDSPORE_NATIVE_OPSET, export_mindir, export_onnx_mindspore
from ipt_ms.export.onnx_graph import (
    BATCH_AXIS,
    INPUT_NAME,
    ONNX_PROTOBUF_LIMIT,
    OUTPUT_NAME,
    STAGE_PREFIX,
    TRACE_BATCH,
    batch_axis,
    onnx_opset,
)
from ipt_ms.export.torch_side import TORCH_MIN_OPSET, export_onnx_torch
from ipt_ms.fileio import check_output_file

FORMATS = ("onnx", "mindir")
SOURCES = ("mindspore", "torch")

__all__ = [
    "BATCH_AXIS", "EXPORT_FORMAT_VERSION", "FORMATS", "INPUT_NAME", "META_FORMAT_VERSION", "META_OPSET",
    "META_PROVENANCE", "META_SCALE", "META_SOURCE", "META_SPEC", "META_STAGES", "META_TASK", "META_TASK_INDEX",
    "META_WEIGHTS_DIGEST", "MINDSPORE_NATIVE_OPSET", "ONNX_PROTOBUF_LIMIT", "OUTPUT_NAME", "SOURCES",
    "STAGE_PREFIX", "TORCH_MIN_OPSET", "TRACE_BATCH", "ExportInfo", "ExportResult", "batch_axis",
    "export_mindir", "export_onnx_mindspore", "export_onnx_torch", "export_weights", "info_from_metadata",
    "onnx_opset", "output_paths", "read_mindir_info", "read_onnx_info",
]


def export_weights(weights: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "onnx",
                   task: str | int = "all", source: str = "mindspore", opset: int | None = None,
                   with_stages: bool = False, device: str = "auto", progress: bool = False,
                   overwrite: bool = False, **overrides) -> list[ExportResult]:
    """Export one task (or `task="all"`: every task, one file each) of a weights file.

    `fmt` onnx or mindir; `source` mindspore (`mindspore.onnx.export`) or torch (the twin,
    ONNX only). Overrides as for `load_weights` (num_heads, task_names, pos_every).
    `progress` names each step on stderr (a full-size torch export takes about a minute).
    """
    from ipt_ms.convert.weights import official_state, read_weight_file, resolve_spec, state_digest
    from ipt_ms.progress import StepProgress
    from ipt_ms.provenance import converted

    fmt, source = fmt.lower(), source.lower()
    if fmt not in FORMATS:
        raise IPTError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if source not in SOURCES:
        raise IPTError(f"unknown export source {source!r}; choose one of {', '.join(SOURCES)}")
    if fmt == "mindir" and source != "mindspore":
        raise IPTError("MindIR can only be exported from MindSpore (--source mindspore)")
    if fmt == "mindir" and (opset is not None or with_stages):
        raise IPTError("--opset and --with-stages apply to ONNX only")
    with StepProgress("export", 2, enable=progress) as steps:
        steps.start("reading weights")
        read = read_weight_file(weights)
        spec = resolve_spec(read, **overrides)
        state = official_state(read, spec)
        digest = state_digest(spec, state)  # before naming a placeholder task, as `ipt-ms eval` computes it
        spec = spec.name_placeholder_task(task)  # the released single-task files (IPT_dn30.pt, ...)
        indices = list(range(spec.num_tasks)) if str(task) == "all" else [spec.task_index(task)]
        steps.set_total(2 + len(indices))
        paths = output_paths(output, fmt, [spec.task_names[i] for i in indices], Path(weights).stem)
        for target in paths.values():
            check_output_file(target)  # a folder, a device or an unwritable place: refused before tracing
            if target.exists() and not overwrite:
                raise IPTError(f"output {str(target)!r} already exists; pass --overwrite to replace it")
        steps.start(f"building the {'PyTorch twin' if source == 'torch' else 'MindSpore network'}")
        if source == "torch":
            from parity.torch_runner import build_torch_model

            model = build_torch_model(spec, state)

            def export_one(i):
                return export_onnx_torch(model, spec, i, paths[spec.task_names[i]], opset=opset,
                                         with_stages=with_stages, weights_digest=digest,
                                         provenance=converted(weights, read.layout, read.provenance,
                                                              spec.task_names[i]), overwrite=overwrite)
        else:
            from ipt_ms.inference import build_model
            from ipt_ms.runtime import configure

            configure(device, "graph")
            net = build_model(spec, state)

            def export_one(i):
                record = converted(weights, read.layout, read.provenance, spec.task_names[i])
                if fmt == "mindir":
                    return export_mindir(net, spec, i, paths[spec.task_names[i]], weights_digest=digest,
                                         provenance=record, overwrite=overwrite)
                return export_onnx_mindspore(net, spec, i, paths[spec.task_names[i]], opset=opset,
                                             with_stages=with_stages, weights_digest=digest, provenance=record,
                                             overwrite=overwrite)
        results = []
        for n, i in enumerate(indices, start=1):
            steps.start(f"exporting {spec.task_names[i]} ({n}/{len(indices)}: trace, check, write {fmt})")
            results.append(export_one(i))
        return results
