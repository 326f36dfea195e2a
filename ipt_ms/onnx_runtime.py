"""ONNX Runtime as a third framework: run files written by `ipt-ms export` on tiles.

`OnnxRuntimePredictor` has the predictor interface of `ipt_ms.predictors` (numpy tiles
(N, C, P, P) -> (N, C, P*s, P*s); attributes framework, spec, task_idx, scale), so
restore, eval and parity-bench run ONNX files unchanged. Everything it needs (the
architecture, which task the file holds, which parity stages it exposes) comes from the
file's metadata, so no config or weights file goes with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.export import INPUT_NAME, OUTPUT_NAME, STAGE_PREFIX, ExportInfo, batch_axis, read_onnx_info
from ipt_ms.spec import IPTSpec


def providers_for(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for a --device value (CUDA when asked or available)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    name = str(device).lower()
    if name in ("gpu", "cuda"):
        if "CUDAExecutionProvider" not in available:
            raise IPTError("device GPU requested, but this onnxruntime build has no CUDAExecutionProvider "
                           f"(available: {', '.join(available)}); install onnxruntime-gpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if name == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    if name == "cpu":
        return ["CPUExecutionProvider"]
    raise IPTError(f"device {device!r} is not available to ONNX Runtime (use CPU, GPU or auto)")


def open_session(path: str | os.PathLike, device: str = "auto", threads: int | None = None):
    """An `onnxruntime.InferenceSession` for `path` with full graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT warns about shapes the exporters left symbolic
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers_for(device))
    except IPTError:
        raise
    except Exception as err:
        raise IPTError(f"ONNX Runtime cannot load {str(path)!r}: {str(err).strip().splitlines()[0]}") from err


def _apply_overrides(info: ExportInfo, overrides: dict, path: str) -> IPTSpec:
    """Task names may be renamed (as for weights files); the rest is baked into the graph."""
    spec = info.spec
    if overrides.get("task_names"):
        spec = spec.replace(task_names=tuple(overrides["task_names"]))
    for key in ("num_heads", "pos_every", "patch_size"):
        value = overrides.get(key)
        if value is not None and value != getattr(spec, key):
            raise IPTError(f"{path!r} was exported with {key}={getattr(spec, key)}; it cannot run with {key}={value}")
    return spec


class OnnxRuntimePredictor:
    """Runs batches of input tiles through an exported IPT ONNX file.

    The file holds one task; `task` (a name, or the index in the exported architecture)
    must be that task, so a wrong file is reported instead of silently used. Exports have a
    dynamic batch, so tiles run `batch_size` at a time with no padding; a file with a fixed
    batch (not written by ipt-ms) gets its batches zero-padded to that size.
    """

    framework = "onnx"

    def __init__(self, path: str | os.PathLike, task: str | int | None = None, batch_size: int = 64,
                 progress: bool = False, device: str = "auto", threads: int | None = None, **overrides):
        if batch_size < 1:
            raise IPTError(f"batch size must be >= 1, got {batch_size}")
        self.path = str(path)
        self.info = read_onnx_info(path)
        self.spec = _apply_overrides(self.info, overrides, self.path)
        self.task_idx = self.info.task_index
        if task is not None and self.spec.task_index(task) != self.task_idx:
            raise IPTError(f"{self.path!r} holds task {self.spec.task_names[self.task_idx]} (index {self.task_idx}), "
                           f"not {task!r}; export that task (`ipt-ms export --task {task}`) or pass "
                           f"--task {self.spec.task_names[self.task_idx]}")
        self.scale = self.spec.scales[self.task_idx]
        self.batch_size, self.progress = batch_size, progress
        self.session = open_session(path, device, threads)
        dim = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = dim if isinstance(dim, int) and dim > 0 else None

    @property
    def stage_names(self) -> list[str]:
        """Parity stages the file exposes as outputs (empty unless exported with stages)."""
        return list(self.info.stages)

    def _run(self, chunk: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        n = chunk.shape[0]
        if self.fixed_batch and n != self.fixed_batch:
            if n > self.fixed_batch:
                raise IPTError(f"{self.path!r} has a fixed batch of {self.fixed_batch}; use --batch-size "
                               f"{self.fixed_batch} or less")
            pad = np.zeros((self.fixed_batch - n,) + chunk.shape[1:], np.float32)
            chunk = np.concatenate([chunk, pad])
        results = self.session.run(outputs, {INPUT_NAME: np.ascontiguousarray(chunk, dtype=np.float32)})
        return [np.take(r, np.arange(n), axis=batch_axis(r.ndim)) if r.shape[batch_axis(r.ndim)] != n else r
                for r in results]

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        from ipt_ms.inference import run_batches

        step = min(self.batch_size, self.fixed_batch or self.batch_size)
        return run_batches(tiles, lambda chunk: self._run(chunk, [OUTPUT_NAME])[0], step=step, scale=self.scale,
                           progress=self.progress)

    def stages(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every stage the file exposes, plus `output`, for one batch (parity)."""
        names = [OUTPUT_NAME] + [STAGE_PREFIX + s for s in self.info.stages]
        values = self._run(x, names)
        out = {name[len(STAGE_PREFIX):]: v for name, v in zip(names[1:], values[1:])}
        out["output"] = values[0]
        return out


def onnx_weights_digest(path: str | os.PathLike) -> str:
    """Content identity of an exported file (eval logs use it to decide whether they can resume).

    The source weights' digest recorded at export, combined with the exporter and opset
    (they decide the numerics too); the file's own sha256 when no digest was recorded.
    """
    import hashlib

    info = read_onnx_info(path)
    if info.weights_digest:
        key = f"{info.weights_digest}|onnx|{info.source}|{info.opset}|{info.task_index}"
        return hashlib.sha256(key.encode()).hexdigest()
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
