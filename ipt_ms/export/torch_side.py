"""Exports from the PyTorch twin: ONNX through the dynamo exporter (`F.fold` needs opset >= 18)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.export.files import writable_parent
from ipt_ms.export.metadata import ExportResult
from ipt_ms.export.onnx_graph import BATCH_AXIS, INPUT_NAME, complete_onnx, example_input, output_names
from ipt_ms.spec import IPTSpec

TORCH_MIN_OPSET = 18  # Col2Im (F.fold) first exists in opset 18


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
    writable_parent(path)
    stages, names = output_names(spec, task_idx, with_stages)

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
    example = torch.from_numpy(example_input(spec))
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
    return complete_onnx(program.model_proto, spec, task_idx, "torch", stages, path, weights_digest=weights_digest,
                         provenance=provenance, overwrite=overwrite, started=start, exported_from="the PyTorch twin")
