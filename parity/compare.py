"""Layer-by-layer parity between the MindSpore IPT and the PyTorch twin.

Both networks report the same named stages (`IPTSpec.stage_names`): mean shift, head
conv, each ResBlock, linear_encoding, every encoder and decoder layer, mlp_head, fold,
body residual, each upsampler step, tail conv and the output. Each stage is compared
with PyTorch as the reference:

* max abs err  = max |ms - torch|
* max rel err  = max abs err / max |torch|   (relative to the stage's range, so
  near-zero elements do not blow it up)
* cosine       = cosine similarity of the flattened stage tensors (float64)

The float32 noise floor. Optionally (on by default in `run_parity`) the twin also runs
in float64, which gives each stage two more numbers:

* fp32 floor  = max rel err of PyTorch float32 against PyTorch float64 (how far an
  established float32 implementation is from the exact result)
* ms vs fp64  = max rel err of MindSpore against PyTorch float64

A stage passes when its max rel err is within the fixed tolerance, or when MindSpore is
no further than `floor_factor` times PyTorch-float32's own distance from the float64
result. This matters for randomly initialised full-size models: their decoder's
cross-attention is nearly one-hot (logits with std ~37), which amplifies float32
rounding ~2x per layer, so PyTorch float32 itself ends up ~4e-4 from float64 and no
float32 implementation can meet a fixed 1e-5. A real discrepancy (a wrong weight, a
wrong formula) is far from float64 while PyTorch float32 is not, so it still fails.

A third framework. `run_parity(onnx=...)` also runs an exported ONNX graph in ONNX
Runtime and compares it with PyTorch by the same rules, in `ParityReport.others["onnx"]`:
always the output, and every stage the file exposes (`ipt-ms export --with-stages`
writes them all; `run_parity(onnx_export=...)` exports such a file on the fly).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec

DEFAULT_STAGE_TOL = 1e-5
DEFAULT_OUTPUT_TOL = 1e-4
DEFAULT_FLOOR_FACTOR = 4.0


@dataclass
class StageDiff:
    name: str
    shape: tuple[int, ...]
    max_abs_err: float
    max_rel_err: float
    cosine: float
    tolerance: float
    ms_vs_fp64: float | None = None  # MindSpore vs PyTorch float64
    fp32_floor: float | None = None  # PyTorch float32 vs PyTorch float64
    floor_factor: float = DEFAULT_FLOOR_FACTOR

    @property
    def within_tolerance(self) -> bool:
        return bool(np.isfinite(self.max_rel_err)) and self.max_rel_err <= self.tolerance

    @property
    def within_floor(self) -> bool:
        """MindSpore is as close to the float64 result as PyTorch float32 is (up to floor_factor)."""
        if self.ms_vs_fp64 is None or self.fp32_floor is None or not np.isfinite(self.ms_vs_fp64):
            return False
        return self.ms_vs_fp64 <= self.floor_factor * self.fp32_floor

    @property
    def ok(self) -> bool:
        return self.within_tolerance or self.within_floor

    @property
    def floor_limit(self) -> float | None:
        """The float32-floor rule's bound on `ms_vs_fp64`: floor_factor x fp32_floor."""
        return None if self.fp32_floor is None else self.floor_factor * self.fp32_floor

    @property
    def passed_by(self) -> str | None:
        """'tolerance', 'floor' or None (failed): which rule let the stage pass."""
        if self.within_tolerance:
            return "tolerance"
        return "floor" if self.within_floor else None


def _errors(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(max abs err, max abs err / max |reference|, cosine), in float64."""
    a, b = candidate.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / norm) if norm > 0 else (1.0 if max_abs == 0 else 0.0)
    return max_abs, max_rel, cosine


def diff_arrays(name: str, candidate: np.ndarray, reference: np.ndarray, tolerance: float,
                reference_fp64: np.ndarray | None = None,
                floor_factor: float = DEFAULT_FLOOR_FACTOR) -> StageDiff:
    """Compare one stage (candidate = MindSpore, reference = PyTorch float32)."""
    if candidate.shape != reference.shape:
        raise IPTError(f"stage {name}: MindSpore shape {candidate.shape} != PyTorch shape {reference.shape}")
    max_abs, max_rel, cosine = _errors(candidate, reference)
    ms_vs_fp64 = floor = None
    if reference_fp64 is not None:
        ms_vs_fp64 = _errors(candidate, reference_fp64)[1]
        floor = _errors(reference, reference_fp64)[1]
    return StageDiff(name, tuple(reference.shape), max_abs, max_rel, cosine, tolerance, ms_vs_fp64, floor,
                     floor_factor)


@dataclass
class ParityReport:
    task: str
    input: str
    mode: str
    device: str
    stage_tol: float
    output_tol: float
    stages: list[StageDiff]
    spec: dict
    floor_factor: float = DEFAULT_FLOOR_FACTOR
    timings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    others: dict[str, list[StageDiff]] = field(default_factory=dict)  # e.g. {"onnx": ...} vs PyTorch
    sources: dict[str, str] = field(default_factory=dict)  # what each other framework ran

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and all(s.ok for diffs in self.others.values() for s in diffs)

    @property
    def failures(self) -> list[StageDiff]:
        """MindSpore stages above tolerance, then the other frameworks' (named `framework:stage`)."""
        extra = [dataclasses.replace(s, name=f"{fw}:{s.name}") for fw, diffs in self.others.items()
                 for s in diffs if not s.ok]
        return [s for s in self.stages if not s.ok] + extra

    @property
    def has_fp64(self) -> bool:
        """Whether a float64 reference ran (so the float32-floor rule could apply)."""
        return all(s.fp32_floor is not None for s in self.stages)

    def table(self) -> str:
        """The stage table(s) and a legend, as `ipt-ms parity` prints them."""
        from parity.report import full_text

        return full_text(self)

    def summary(self) -> str:
        """One line: verdict, the output's and the worst stage's numbers beside their tolerances."""
        from parity.report import summary_line

        return summary_line(self)

    def verdict(self) -> str:
        """A paragraph a reviewer can paste into a pull request (report.md opens with it)."""
        from parity.report import verdict_paragraph

        return verdict_paragraph(self)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["verdict"] = self.verdict()
        pairs = list(zip(data["stages"], self.stages))
        for framework, diffs in self.others.items():
            pairs += list(zip(data["others"][framework], diffs))
        for stage, diff in pairs:
            stage.update(ok=diff.ok, within_tolerance=diff.within_tolerance, within_floor=diff.within_floor,
                         passed_by=diff.passed_by, floor_limit=diff.floor_limit)
        return data

    def to_markdown(self) -> str:
        from parity.report import markdown

        return markdown(self)

    def write(self, directory: str | Path) -> list[Path]:
        """Write report.json, report.md and error_vs_depth.png into `directory`."""
        from ipt_ms.fileio import atomic_output, ensure_writable_dir

        directory = ensure_writable_dir(directory, "report directory")
        written = []
        for name, text in (("report.json", json.dumps(self.to_dict(), indent=2)), ("report.md", self.to_markdown())):
            with atomic_output(directory / name) as tmp:
                tmp.write_text(text + "\n")
            written.append(directory / name)
        written.append(self.plot(directory / "error_vs_depth.png"))
        return written

    def plot(self, path: str | Path) -> Path:
        """error_vs_depth.png: each pass rule's region and the verdict (see `parity.report.plot`)."""
        from parity.report import plot

        return plot(self, path)


# ------------------------------------------------------------------------------ running
def make_input(spec: IPTSpec, image: str | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """A (1, C, P, P) float32 input: the centre crop of an image file, or seeded uniform noise."""
    P = spec.patch_size
    if image is None:
        rng = np.random.default_rng(seed)
        return rng.uniform(0, spec.rgb_range, (1, spec.n_colors, P, P)).astype(np.float32), \
            f"seeded uniform noise (seed {seed})"
    from ipt_ms.data.imageio import read_image
    from ipt_ms.tiling import pad_to_patch

    pixels = read_image(image).astype(np.float32).transpose(2, 0, 1)
    pixels = pad_to_patch(pixels, P)
    _, h, w = pixels.shape
    top, left = (h - P) // 2, (w - P) // 2
    crop = pixels[:, top:top + P, left:left + P]
    return np.ascontiguousarray(crop[None]), f"centre {P}x{P} crop of {Path(image).name}"


def mindspore_stages(net, x: np.ndarray, task_idx: int) -> dict[str, np.ndarray]:
    import mindspore as ms

    _, stages = net(ms.Tensor(x), task_idx, True)
    names = net.spec.stage_names(task_idx)
    return {n: s.asnumpy() for n, s in zip(names, stages)}


def torch_stages(model, x: np.ndarray, task_idx: int, dtype=None) -> dict[str, np.ndarray]:
    """Stages of the twin; `dtype=torch.float64` for the float64 reference (model must match)."""
    import torch

    with torch.no_grad():
        inputs = torch.from_numpy(x) if dtype is None else torch.from_numpy(x).to(dtype)
        _, stages = model(inputs, task_idx, with_stages=True)
    names = model.spec.stage_names(task_idx)
    return {n: s.detach().cpu().numpy() for n, s in zip(names, stages)}


def compare_available(candidate: dict[str, np.ndarray], torch_out: dict[str, np.ndarray], names: list[str],
                      stage_tol: float, output_tol: float, torch_fp64: dict[str, np.ndarray] | None = None,
                      floor_factor: float = DEFAULT_FLOOR_FACTOR) -> list[StageDiff]:
    """Like `compare_stages` for a framework that exposes only some stages (it must give the output)."""
    if "output" not in candidate:
        raise IPTError("the third framework's trace has no 'output'")
    unknown = sorted(set(candidate) - set(names))
    if unknown:
        raise IPTError(f"the third framework reports stages this architecture does not have: {unknown}")
    present = [n for n in names if n in candidate]
    return compare_stages(candidate, torch_out, present, stage_tol, output_tol, torch_fp64, floor_factor)


def _onnx_predictor(spec: IPTSpec, task_idx: int, files: list[str] | None, export_source: str | None,
                     net, model, workdir: str) -> tuple[object | None, str]:
    """The ONNX Runtime predictor for this task: from the given files, or exported now (with stages)."""
    from ipt_ms.onnx_runtime import OnnxRuntimePredictor

    if files:
        from ipt_ms.export import read_onnx_info

        matches = []
        for path in files:  # metadata only: a session is opened for the chosen file alone
            info = read_onnx_info(path)
            if info.spec.to_dict() != spec.to_dict():
                raise IPTError(f"{path!r} was exported from a different architecture than the weights")
            if info.task_index == task_idx:
                matches.append((path, info))
        if not matches:
            raise IPTError(f"none of the ONNX files holds task {spec.task_names[task_idx]}: {', '.join(files)}")
        path, info = matches[0]
        return OnnxRuntimePredictor(path, None), f"{Path(path).name}, exported from {info.source}, opset {info.opset}"
    if export_source is None:
        return None, ""
    from ipt_ms.export import export_onnx_mindspore, export_onnx_torch

    path = Path(workdir) / f"{spec.task_names[task_idx]}.onnx"
    if export_source == "torch":
        result = export_onnx_torch(model, spec, task_idx, path, with_stages=True)
    elif export_source == "mindspore":
        result = export_onnx_mindspore(net, spec, task_idx, path, with_stages=True)
    else:
        raise IPTError(f"unknown ONNX export source {export_source!r}; choose mindspore or torch")
    return OnnxRuntimePredictor(path, None), f"exported from {result.source} now, opset {result.opset}"


def compare_stages(ms_out: dict[str, np.ndarray], torch_out: dict[str, np.ndarray], names: list[str],
                   stage_tol: float, output_tol: float, torch_fp64: dict[str, np.ndarray] | None = None,
                   floor_factor: float = DEFAULT_FLOOR_FACTOR) -> list[StageDiff]:
    missing = [n for n in names if n not in ms_out or n not in torch_out]
    if missing:
        raise IPTError(f"stages missing from a framework's trace: {missing}")
    return [diff_arrays(n, ms_out[n], torch_out[n], output_tol if n == "output" else stage_tol,
                        None if torch_fp64 is None else torch_fp64[n], floor_factor) for n in names]


def run_parity(weights: str, *, ckpt: str | None = None, task: str | int = 0, image: str | None = None,
               seed: int = 0, mode: str = "graph", device: str = "auto", stage_tol: float = DEFAULT_STAGE_TOL,
               output_tol: float = DEFAULT_OUTPUT_TOL, fp64_reference: bool = True,
               floor_factor: float = DEFAULT_FLOOR_FACTOR, onnx: list[str] | None = None,
               onnx_export: str | None = None, progress: bool = False, **overrides) -> ParityReport:
    """Run both frameworks on one input and compare every stage.

    `weights` (any format) feeds the PyTorch twin, and the MindSpore network too unless
    `ckpt` names a separate MindSpore checkpoint (e.g. the output of `ipt-ms convert`).
    With `fp64_reference` the twin also runs in float64 to measure the float32 floor.
    A third framework, ONNX Runtime, joins with `onnx` (exported files; the one holding
    this task is used) or `onnx_export` ("mindspore" or "torch": export one now, with
    every stage exposed). `progress` names each step on stderr as it runs (a full-size
    model takes 20 to 70 s, most of it in MindSpore's first, compiling call).
    """
    from ipt_ms.progress import StepProgress

    total = 6 + bool(onnx or onnx_export) + bool(fp64_reference)
    with StepProgress(f"parity {task}", total, enable=progress) as steps:
        return _run_parity(steps, weights, ckpt, task, image, seed, mode, device, stage_tol, output_tol,
                           fp64_reference, floor_factor, onnx, onnx_export, overrides)


def _run_parity(steps, weights, ckpt, task, image, seed, mode, device, stage_tol, output_tol, fp64_reference,
                floor_factor, onnx, onnx_export, overrides) -> ParityReport:
    import tempfile

    steps.start("importing MindSpore and PyTorch")
    import mindspore as ms
    import torch

    from ipt_ms.convert.weights import load_weights
    from ipt_ms.inference import build_model
    from ipt_ms.runtime import configure
    from parity.torch_runner import build_torch_model

    device = configure(device, mode)
    steps.start("reading weights")
    spec, torch_state = load_weights(weights, **overrides)
    ms_spec, ms_state = (spec, torch_state) if ckpt is None else load_weights(ckpt, **overrides)
    if ms_spec.to_dict() != spec.to_dict():
        diffs = [k for k, v in spec.to_dict().items() if ms_spec.to_dict().get(k) != v]
        raise IPTError(f"{ckpt!r} and {weights!r} describe different architectures (differ in: {', '.join(diffs)})")
    spec = spec.name_placeholder_task(task)  # the released single-task files (IPT_dn30.pt, ...)
    task_idx = spec.task_index(task)
    x, description = make_input(spec, image, seed)

    timings = {}
    steps.start("building the MindSpore network")
    net = build_model(spec, ms_state)
    steps.start(f"MindSpore forward ({mode} mode{', first call compiles' if mode == 'graph' else ''})")
    start = time.perf_counter()
    ms_out = mindspore_stages(net, x, task_idx)
    timings["mindspore first call"] = time.perf_counter() - start
    steps.start("building the PyTorch twin")
    model = build_torch_model(spec, torch_state)
    steps.start("PyTorch float32 forward")
    start = time.perf_counter()
    torch_out = torch_stages(model, x, task_idx)
    timings["pytorch"] = time.perf_counter() - start
    onnx_out, sources = None, {}
    if onnx or onnx_export:
        steps.start("ONNX Runtime" + (f" (exporting from {onnx_export} first)" if onnx_export and not onnx else ""))
        with tempfile.TemporaryDirectory(prefix="ipt-parity-onnx-") as workdir:
            predictor, sources["onnx"] = _onnx_predictor(spec, task_idx, onnx, onnx_export, net, model, workdir)
            start = time.perf_counter()
            onnx_out = predictor.stages(x)
            timings["onnxruntime"] = time.perf_counter() - start
    torch_fp64 = None
    if fp64_reference:
        steps.start("PyTorch float64 forward (the exact reference)")
        start = time.perf_counter()
        torch_fp64 = torch_stages(model.double(), x, task_idx, dtype=torch.float64)
        timings["pytorch float64"] = time.perf_counter() - start

    names = spec.stage_names(task_idx)
    stages = compare_stages(ms_out, torch_out, names, stage_tol, output_tol, torch_fp64, floor_factor)
    others = {}
    if onnx_out is not None:
        others["onnx"] = compare_available(onnx_out, torch_out, names, stage_tol, output_tol, torch_fp64,
                                           floor_factor)
    environment = {"mindspore": ms.__version__, "torch": torch.__version__, "numpy": np.__version__,
                   "python": platform.python_version(), "machine": platform.machine()}
    if onnx_out is not None:
        import onnxruntime

        environment["onnxruntime"] = onnxruntime.__version__
    return ParityReport(task=spec.task_names[task_idx], input=description, mode=mode, device=device,
                        stage_tol=stage_tol, output_tol=output_tol, stages=stages, spec=spec.to_dict(),
                        floor_factor=floor_factor,
                        timings=timings, environment=environment, others=others, sources=sources)
