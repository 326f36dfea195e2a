"""Export an IPT task to ONNX (from MindSpore or from the PyTorch twin) or to MindIR.

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

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.fileio import OVERWRITE_HINT, atomic_output, check_output_file, disk_full
from ipt_ms.provenance import PROVENANCE_METADATA_KEY, parse_record, record_json
from ipt_ms.runtime import mindspore_log_silenced
from ipt_ms.spec import IPTSpec

FORMATS = ("onnx", "mindir")
SOURCES = ("mindspore", "torch")
MINDSPORE_NATIVE_OPSET = 11  # what mindspore.onnx.export emits (2.x)
TORCH_MIN_OPSET = 18  # Col2Im (F.fold) first exists in opset 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"
STAGE_PREFIX = "stage/"
BATCH_AXIS = "batch"
TRACE_BATCH = 2  # not 1: a batch baked in by mistake then fails the dynamic-batch checks
ONNX_PROTOBUF_LIMIT = 2**31 - 1

# metadata keys (ONNX metadata_props / MindIR user_info)
META_SPEC = "ipt_spec"
META_TASK = "ipt_task"
META_TASK_INDEX = "ipt_task_index"
META_SCALE = "ipt_scale"
META_SOURCE = "ipt_source"
META_OPSET = "ipt_opset"
META_STAGES = "ipt_stages"
META_WEIGHTS_DIGEST = "ipt_weights_sha256"
META_FORMAT_VERSION = "ipt_export_version"
META_PROVENANCE = PROVENANCE_METADATA_KEY  # where the weights came from (ipt_ms.provenance): a conversion
EXPORT_FORMAT_VERSION = "1"


@dataclass
class ExportResult:
    """What one export wrote (printed by the CLI, checked by the tests)."""

    path: Path
    format: str
    source: str
    task: str
    task_index: int
    opset: int | None
    stages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        kind = f"ONNX opset {self.opset}" if self.format == "onnx" else "MindIR"
        size = self.path.stat().st_size / 2**20 if self.path.exists() else 0.0
        extra = f", {len(self.stages)} stage outputs" if self.stages else ""
        return (f"{self.path} ({kind}, from {self.source}, task {self.task} [index {self.task_index}], "
                f"dynamic batch{extra}, {size:.1f} MiB, {self.seconds:.1f} s)")


@dataclass
class ExportInfo:
    """The IPT description read back from an exported file's metadata."""

    spec: IPTSpec
    task: str
    task_index: int
    scale: int
    source: str
    opset: int | None
    stages: list[str]
    weights_digest: str | None
    provenance: dict | None = None  # ipt_ms.provenance record; None when the file records none


# ------------------------------------------------------------------------------ metadata
def _metadata(spec: IPTSpec, task_idx: int, source: str, opset: int | None, stages: list[str],
              weights_digest: str | None, provenance: dict | None = None) -> dict[str, str]:
    meta = {
        META_FORMAT_VERSION: EXPORT_FORMAT_VERSION,
        META_SPEC: spec.to_json(),
        META_TASK: spec.task_names[task_idx],
        META_TASK_INDEX: str(task_idx),
        META_SCALE: str(spec.scales[task_idx]),
        META_SOURCE: source,
        META_STAGES: json.dumps(stages),
    }
    if opset is not None:
        meta[META_OPSET] = str(opset)
    if weights_digest:
        meta[META_WEIGHTS_DIGEST] = weights_digest
    if provenance is not None:
        meta[META_PROVENANCE] = record_json(provenance)
    return meta


def info_from_metadata(meta: dict[str, str], what: str) -> ExportInfo:
    """Parse the metadata an export wrote; IPTError naming `what` when it is not an ipt-ms export."""
    if META_SPEC not in meta or META_TASK_INDEX not in meta:
        raise IPTError(f"{what} carries no IPT description (metadata {META_SPEC!r}); "
                       "it was not written by `ipt-ms export`")
    spec = IPTSpec.from_json(meta[META_SPEC])
    try:
        task_idx = int(meta[META_TASK_INDEX])
        stages = json.loads(meta.get(META_STAGES, "[]"))
        opset = int(meta[META_OPSET]) if META_OPSET in meta else None
    except ValueError as err:
        raise IPTError(f"{what}: unreadable IPT metadata: {err}") from err
    if not 0 <= task_idx < spec.num_tasks:
        raise IPTError(f"{what}: task index {task_idx} outside the recorded architecture")
    provenance = parse_record(meta[META_PROVENANCE], what) if META_PROVENANCE in meta else None
    return ExportInfo(spec=spec, task=spec.task_names[task_idx], task_index=task_idx,
                      scale=spec.scales[task_idx], source=meta.get(META_SOURCE, "unknown"), opset=opset,
                      stages=list(stages), weights_digest=meta.get(META_WEIGHTS_DIGEST), provenance=provenance)


def read_onnx_info(path: str | os.PathLike) -> ExportInfo:
    """The architecture, task and stage outputs recorded in an exported ONNX file."""
    import onnx

    path = Path(path)
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".safetensors"):
        raise IPTError(f"{str(path)!r} is a weights file, not an ONNX model: --framework onnx runs files written "
                       "by `ipt-ms export`; run weights with --framework mindspore or torch")
    if not path.is_file():
        raise IPTError(f"ONNX file not found: {str(path)!r}")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises its own DecodeError types
        raise IPTError(f"{str(path)!r} is not a readable ONNX model: {err}") from err
    meta = {p.key: p.value for p in model.metadata_props}
    return info_from_metadata(meta, repr(str(path)))


def read_mindir_info(path: str | os.PathLike) -> ExportInfo:
    """The architecture and task recorded in an exported MindIR file (its `user_info`)."""
    import mindspore as ms

    path = Path(path)
    if not path.is_file():
        raise IPTError(f"MindIR file not found: {str(path)!r}")
    try:
        proto = ms.load_mindir(str(path))
    except Exception as err:
        raise IPTError(f"{str(path)!r} is not a readable MindIR model: {err}") from err
    return info_from_metadata(dict(proto.user_info), repr(str(path)))


# ------------------------------------------------------------------------------ paths
def output_paths(output: str | os.PathLike, fmt: str, tasks: list[str], stem: str) -> dict[str, Path]:
    """Where each task's file goes.

    One task: `output` itself (or `output/<stem>_<task>.<fmt>` when it is a folder).
    Several: `output` is a folder, or a file name that gets `_<task>` before its suffix.
    """
    output = Path(output)
    suffix = f".{fmt}"
    as_dir = output.is_dir() or str(output).endswith(os.sep) or output.suffix == ""
    if as_dir:
        return {t: output / f"{stem}_{t}{suffix}" for t in tasks}
    if output.suffix.lower() != suffix:
        raise IPTError(f"output {str(output)!r} should end in {suffix} for --format {fmt}")
    if len(tasks) == 1:
        return {tasks[0]: output}
    return {t: output.with_name(f"{output.stem}_{t}{suffix}") for t in tasks}


def _writable_parent(path: Path) -> Path:
    """Check the output folder before a long export, not after."""
    from ipt_ms.fileio import ensure_writable_dir

    return ensure_writable_dir(path.parent if str(path.parent) else Path("."))


_MINDSPORE_FILE_NAME = re.compile(r"^[0-9a-zA-Z@_\-.:/\\]+$")  # mindspore._checkparam's rule for export names


@contextlib.contextmanager
def _mindspore_scratch(path: Path):
    """A temporary folder whose absolute name MindSpore's exporters accept; removed afterwards.

    Next to `path` when that folder's name qualifies (the result is then renamed, not
    copied), else in the system temporary folder. A full disk there is one line.
    """
    folder = _writable_parent(path).resolve()
    candidates = [folder, Path(tempfile.gettempdir()).resolve()]
    base = next((c for c in candidates if _MINDSPORE_FILE_NAME.match(str(c))), None)
    if base is None:
        raise IPTError(f"MindSpore cannot write under {str(folder)!r} (its exporters accept only ASCII letters, "
                       f"digits and @_-.:/ in file names) and neither under {str(candidates[1])!r}; set TMPDIR "
                       "to such a folder")
    with tempfile.TemporaryDirectory(prefix=".ipt-export-", dir=base) as scratch:
        try:
            yield Path(scratch)
        except IPTError:
            raise
        except Exception as err:
            if disk_full(err, scratch):
                where = "" if base == folder else f" (MindSpore's scratch file in {str(base)!r})"
                raise IPTError(f"cannot write {str(path)!r}: no space left on device{where}") from None
            raise


def _move_into(source: Path, tmp: Path) -> None:
    """Move a finished scratch file onto an `atomic_output` temporary name (rename, or copy across file systems)."""
    try:
        os.replace(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)


# ------------------------------------------------------------------------------ MindSpore side
def _mindspore_task_cell(net, task_idx: int, with_stages: bool):
    """A Cell computing `net(x, task_idx)` for one fixed task: what the exporters trace."""
    from mindspore import nn

    class TaskForward(nn.Cell):
        def __init__(self, inner, index: int, stages: bool):
            super().__init__()
            self.inner = inner
            self.index = index
            self.stages = stages

        def construct(self, x):
            if self.stages:
                out, stages = self.inner(x, self.index, True)
                return (out,) + stages[:-1]  # the last stage is the output itself
            return self.inner(x, self.index)

    cell = TaskForward(net, task_idx, with_stages)
    cell.set_train(False)
    return cell


def _example_input(spec: IPTSpec, batch: int = TRACE_BATCH) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (batch, spec.n_colors, spec.patch_size, spec.patch_size)
    return rng.uniform(0, spec.rgb_range, shape).astype(np.float32)


def batch_axis(ndim: int) -> int:
    """Where the batch sits in an exported tensor: images (B, C, H, W) axis 0; the body's
    token stages use the official (L, B, E) layout, axis 1."""
    return 1 if ndim == 3 else 0


def _finish_onnx(model, meta: dict[str, str], output_names: list[str], doc: str):
    """Make every output's batch symbolic, drop traced intermediate shapes, attach metadata."""
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        if value.name == INPUT_NAME or value.name in output_names:
            dims = value.type.tensor_type.shape.dim
            if dims:
                axis = batch_axis(len(dims))
                dims[axis].Clear()
                dims[axis].dim_param = BATCH_AXIS
    del graph.value_info[:]  # shapes traced at batch TRACE_BATCH; ORT re-infers what it needs
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = doc
    return model


def _name_outputs(model, names: list[str]):
    """Give the graph outputs our names through Identity nodes.

    (mindspore.onnx.export's `output_names` renames the producing node's output but not
    its other consumers, which breaks the graph when an output is also used inside it,
    as every parity stage is.)
    """
    from onnx import helper

    outputs = model.graph.output
    if len(outputs) != len(names):
        raise IPTError(f"the exported graph has {len(outputs)} outputs, expected {len(names)}")
    for value, name in zip(outputs, names):
        if value.name != name:
            model.graph.node.append(helper.make_node("Identity", [value.name], [name], name=f"rename/{name}"))
            value.name = name
    return model


def onnx_opset(model) -> int:
    """The default-domain opset an ONNX model was written for."""
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _convert_opset(model, opset: int, what: str):
    import onnx
    from onnx import version_converter

    current = onnx_opset(model)
    if opset == current:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as err:
        raise IPTError(f"{what}: cannot convert the exported graph from opset {current} to {opset} "
                       f"(onnx {onnx.__version__}): {err}") from err


def _save_onnx(model, path: Path, overwrite: bool = False) -> None:
    import onnx

    if model.ByteSize() > ONNX_PROTOBUF_LIMIT:
        raise IPTError(f"{path}: the model is over 2 GB, beyond a single-file ONNX protobuf")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise IPTError(f"{path}: the exported graph fails onnx.checker: {str(err).splitlines()[0]}") from err
    with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp:
        onnx.save_model(model, str(tmp))


def export_onnx_mindspore(net, spec: IPTSpec, task_idx: int, path: str | os.PathLike, *,
                          opset: int | None = None, with_stages: bool = False,
                          weights_digest: str | None = None, provenance: dict | None = None,
                          overwrite: bool = False) -> ExportResult:
    """Export a MindSpore IPT (`build_model`) for one task to ONNX with `mindspore.onnx.export`."""
    import mindspore as ms
    import onnx

    from ipt_ms.models import exported_form

    path, start = Path(path), time.perf_counter()
    stages = spec.stage_names(task_idx)[:-1] if with_stages else []
    names = [OUTPUT_NAME] + [STAGE_PREFIX + s for s in stages]
    cell = _mindspore_task_cell(net, task_idx, with_stages)
    with _mindspore_scratch(path) as scratch:
        raw = scratch / "raw.onnx"
        # a failed write is logged, not raised: checked below
        with mindspore_log_silenced() as logged, exported_form(net):
            ms.onnx.export(cell, ms.Tensor(_example_input(spec)), file_name=str(raw), input_names=[INPUT_NAME],
                           dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}})
        if not raw.is_file():
            raise RuntimeError(f"mindspore.onnx.export wrote no file ({logged[-1] if logged else 'no message'})")
        model = _name_outputs(onnx.load_model(str(raw)), names)
    if opset is not None:
        model = _convert_opset(model, opset, str(path))
    final_opset = onnx_opset(model)
    meta = _metadata(spec, task_idx, "mindspore", final_opset, stages, weights_digest, provenance)
    _finish_onnx(model, meta, names, f"IPT task {spec.task_names[task_idx]} exported from MindSpore by ipt-ms")
    _save_onnx(model, path, overwrite)
    return ExportResult(path, "onnx", "mindspore", spec.task_names[task_idx], task_idx, final_opset, stages,
                        time.perf_counter() - start)


# ------------------------------------------------------------------------------ PyTorch side
def export_onnx_torch(model, spec: IPTSpec, task_idx: int, path: str | os.PathLike, *,
                      opset: int | None = None, with_stages: bool = False,
                      weights_digest: str | None = None, provenance: dict | None = None,
                      overwrite: bool = False) -> ExportResult:
    """Export the PyTorch twin (`build_torch_model`) for one task with the dynamo ONNX exporter."""
    import torch

    opset = TORCH_MIN_OPSET if opset is None else opset
    if opset < TORCH_MIN_OPSET:
        raise IPTError(f"the PyTorch twin needs ONNX opset >= {TORCH_MIN_OPSET} (F.fold exports as Col2Im); "
                       f"got {opset}. Use --source mindspore for older opsets")
    path, start = Path(path), time.perf_counter()
    _writable_parent(path)
    stages = spec.stage_names(task_idx)[:-1] if with_stages else []
    names = [OUTPUT_NAME] + [STAGE_PREFIX + s for s in stages]

    class TaskForward(torch.nn.Module):
        def __init__(self, inner, index: int, stages_on: bool):
            super().__init__()
            self.inner, self.index, self.stages_on = inner, index, stages_on

        def forward(self, x):
            if self.stages_on:
                out, trace = self.inner(x, self.index, with_stages=True)
                return (out,) + tuple(trace[:-1])
            return self.inner(x, self.index)

    wrapper = TaskForward(model.eval(), task_idx, with_stages).eval()
    example = torch.from_numpy(_example_input(spec))
    batch = torch.export.Dim(BATCH_AXIS, min=1, max=1 << 16)
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with torch.no_grad(), contextlib.redirect_stdout(None), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation chatter from torch.export internals
            program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=names,
                                        dynamic_shapes={"x": {0: batch}}, verbose=False)
    except IPTError:
        raise
    except Exception as err:
        raise IPTError(f"torch.onnx.export failed for task {spec.task_names[task_idx]}: "
                       f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    onnx_model = program.model_proto
    final_opset = onnx_opset(onnx_model)
    meta = _metadata(spec, task_idx, "torch", final_opset, stages, weights_digest, provenance)
    _finish_onnx(onnx_model, meta, names, f"IPT task {spec.task_names[task_idx]} exported from the PyTorch twin "
                 "by ipt-ms")
    _save_onnx(onnx_model, path, overwrite)
    return ExportResult(path, "onnx", "torch", spec.task_names[task_idx], task_idx, final_opset, stages,
                        time.perf_counter() - start)


# ------------------------------------------------------------------------------ MindIR
def export_mindir(net, spec: IPTSpec, task_idx: int, path: str | os.PathLike, *,
                  weights_digest: str | None = None, provenance: dict | None = None,
                  overwrite: bool = False) -> ExportResult:
    """Export a MindSpore IPT for one task to MindIR with a dynamic batch (MindSpore Lite/serving).

    The graph holds native convolutions (`ipt_ms.models.exported_form`): on a CPU run them with
    ONEDNN_MAX_CPU_ISA=AVX2 exported before MindSpore starts (docs/runtime.md)."""
    import mindspore as ms

    from ipt_ms.models import exported_form

    path, start = Path(path), time.perf_counter()
    if path.suffix.lower() != ".mindir":
        raise IPTError(f"MindIR output {str(path)!r} should end in .mindir")
    cell = _mindspore_task_cell(net, task_idx, False)
    meta = _metadata(spec, task_idx, "mindspore", None, [], weights_digest, provenance)

    def annotate(proto) -> None:
        for key, value in meta.items():
            proto.user_info[key] = value
        proto.doc_string = f"IPT task {spec.task_names[task_idx]} exported by ipt-ms"

    dynamic = ms.Tensor(shape=[None, spec.n_colors, spec.patch_size, spec.patch_size], dtype=ms.float32)
    with _mindspore_scratch(path) as scratch, mindspore_log_silenced(), exported_form(net):
        ms.export(cell, dynamic, file_name=str(scratch / "model"), file_format="MINDIR", custom_func=annotate)
        with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp:
            _move_into(scratch / "model.mindir", tmp)
    return ExportResult(path, "mindir", "mindspore", spec.task_names[task_idx], task_idx, None, [],
                        time.perf_counter() - start)


# ------------------------------------------------------------------------------ one call
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
