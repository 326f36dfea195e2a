"""What an exported file records about itself (ONNX `metadata_props`, MindIR `user_info`), and reading it back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.provenance import PROVENANCE_METADATA_KEY, parse_record, record_json
from ipt_ms.spec import IPTSpec

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


def export_metadata(spec: IPTSpec, task_idx: int, source: str, opset: int | None, stages: list[str],
                          weights_digest: str | None, provenance: dict | None = None) -> dict[str, str]:
    """The metadata of one exported task: architecture, task, source, opset, stages, digest, provenance."""
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
