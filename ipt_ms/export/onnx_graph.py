"""The ONNX graph every export ends with: our input/output names, a symbolic batch, metadata, checked.

Both ONNX exporters (MindSpore's and the twin's dynamo exporter) trace at batch `TRACE_BATCH`
and hand their model to `complete_onnx`, which makes the batch symbolic, drops the traced
intermediate shapes, attaches the metadata, runs onnx.checker and writes the file atomically.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.export.metadata import ExportResult, export_metadata
from ipt_ms.fileio import OVERWRITE_HINT, atomic_output
from ipt_ms.spec import IPTSpec

INPUT_NAME = "input"
OUTPUT_NAME = "output"
STAGE_PREFIX = "stage/"
BATCH_AXIS = "batch"
TRACE_BATCH = 2  # not 1: a batch baked in by mistake then fails the dynamic-batch checks
ONNX_PROTOBUF_LIMIT = 2**31 - 1


def example_input(spec: IPTSpec, batch: int = TRACE_BATCH) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (batch, spec.n_colors, spec.patch_size, spec.patch_size)
    return rng.uniform(0, spec.rgb_range, shape).astype(np.float32)


def batch_axis(ndim: int) -> int:
    """Where the batch sits in an exported tensor: images (B, C, H, W) axis 0; the body's
    token stages use the official (L, B, E) layout, axis 1."""
    return 1 if ndim == 3 else 0


def _finish_onnx(model, meta: dict[str, str], output_names: list[str], doc: str):
    """Make every output's batch symbolic, drop traced intermediate shapes, attach metadata."""
    from onnx import helper

    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        if value.name == INPUT_NAME or value.name in output_names:
            dims = value.type.tensor_type.shape.dim
            if dims:
                axis = batch_axis(len(dims))
                dims[axis].Clear()
                dims[axis].dim_param = BATCH_AXIS
    del graph.value_info[:]  # shapes traced at batch TRACE_BATCH; ORT re-infers what it needs
    helper.set_model_props(model, meta)  # replaces whatever metadata the exporter wrote
    model.doc_string = doc
    return model


def name_outputs(model, names: list[str]):
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


def convert_opset(model, opset: int, what: str):
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


def output_names(spec: IPTSpec, task_idx: int, with_stages: bool) -> tuple[list[str], list[str]]:
    """(stage names, graph output names): `output`, then `stage/<name>` for every stage but the last."""
    stages = spec.stage_names(task_idx)[:-1] if with_stages else []
    return stages, _graph_names(stages)


def _graph_names(stages: list[str]) -> list[str]:
    return [OUTPUT_NAME] + [STAGE_PREFIX + s for s in stages]


def complete_onnx(model, spec: IPTSpec, task_idx: int, source: str, stages: list[str], path: Path, *,
                  weights_digest: str | None, provenance: dict | None, overwrite: bool, started: float,
                  exported_from: str) -> ExportResult:
    """The common ending of both ONNX exports: finish the graph, check it, write it, say what was written."""
    opset = onnx_opset(model)
    meta = export_metadata(spec, task_idx, source, opset, stages, weights_digest, provenance)
    doc = f"IPT task {spec.task_names[task_idx]} exported from {exported_from} by ipt-ms"
    _finish_onnx(model, meta, _graph_names(stages), doc)
    _save_onnx(model, path, overwrite)
    return ExportResult(path, "onnx", source, spec.task_names[task_idx], task_idx, opset, stages,
                        time.perf_counter() - started)
