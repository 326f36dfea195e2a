"""Exports from MindSpore: ONNX through `mindspore.onnx.export`, and MindIR with a dynamic batch."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.export.files import mindspore_scratch, move_into
from ipt_ms.export.metadata import ExportResult, export_metadata
from ipt_ms.export.onnx_graph import (
    BATCH_AXIS,
    INPUT_NAME,
    complete_onnx,
    convert_opset,
    example_input,
    name_outputs,
    output_names,
)
from ipt_ms.fileio import OVERWRITE_HINT, atomic_output
from ipt_ms.runtime import mindspore_log_silenced
from ipt_ms.spec import IPTSpec

MINDSPORE_NATIVE_OPSET = 11  # what mindspore.onnx.export emits (2.x)


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


def export_onnx_mindspore(net, spec: IPTSpec, task_idx: int, path: str | os.PathLike, *,
                          opset: int | None = None, with_stages: bool = False,
                          weights_digest: str | None = None, provenance: dict | None = None,
                          overwrite: bool = False) -> ExportResult:
    """Export a MindSpore IPT (`build_model`) for one task to ONNX with `mindspore.onnx.export`."""
    import mindspore as ms
    import onnx

    from ipt_ms.models import exported_form

    path, start = Path(path), time.perf_counter()
    stages, names = output_names(spec, task_idx, with_stages)
    cell = _mindspore_task_cell(net, task_idx, with_stages)
    with mindspore_scratch(path) as scratch:
        raw = scratch / "raw.onnx"
        # a failed write is logged, not raised: checked below
        with mindspore_log_silenced() as logged, exported_form(net):
            ms.onnx.export(cell, ms.Tensor(example_input(spec)), file_name=str(raw), input_names=[INPUT_NAME],
                           dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}})
        if not raw.is_file():
            raise RuntimeError(f"mindspore.onnx.export wrote no file ({logged[-1] if logged else 'no message'})")
        model = name_outputs(onnx.load_model(str(raw)), names)
    if opset is not None:
        model = convert_opset(model, opset, str(path))
    return complete_onnx(model, spec, task_idx, "mindspore", stages, path, weights_digest=weights_digest,
                         provenance=provenance, overwrite=overwrite, started=start, exported_from="MindSpore")


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
    meta = export_metadata(spec, task_idx, "mindspore", None, [], weights_digest, provenance)

    def annotate(proto) -> None:
        for key, value in meta.items():
            proto.user_info[key] = value
        proto.doc_string = f"IPT task {spec.task_names[task_idx]} exported by ipt-ms"

    dynamic = ms.Tensor(shape=[None, spec.n_colors, spec.patch_size, spec.patch_size], dtype=ms.float32)
    with mindspore_scratch(path) as scratch, mindspore_log_silenced(), exported_form(net):
        ms.export(cell, dynamic, file_name=str(scratch / "model"), file_format="MINDIR", custom_func=annotate)
        with atomic_output(path, overwrite=overwrite, hint=OVERWRITE_HINT) as tmp:
            move_into(scratch / "model.mindir", tmp)
    return ExportResult(path, "mindir", "mindspore", spec.task_names[task_idx], task_idx, None, [],
                        time.perf_counter() - start)
