"""Layer-by-layer parity between the MindSpore IPT and the PyTorch twin.

Both networks report the same named stages (`IPTSpec.stage_names`): mean shift, head
conv, each ResBlock, linear_encoding, every encoder and decoder layer, mlp_head, fold,
body residual, each upsampler step, tail conv and the output.

The verdict: each stage on its own (docs/parity.md has the measured numbers). The twin
runs once in float64; every stage is then computed again by both frameworks in float32
from the float64 run's values of its inputs, rounded to float32 (the networks'
`stage_inputs`), and by the float64 twin from exactly those rounded inputs. So

* own error   = max rel err of MindSpore's stage against float64 on the same inputs: the
  rounding this stage adds, nothing inherited from the stages before;
* fp32 rounding = the same for PyTorch float32, worst of `draws` + 1 runs whose inputs
  are moved by up to one float32 ulp (a spread, not one lucky draw), and never below
  float32's unit roundoff 2^-24;
* own offset / fp32 offset = the same pair for `channel_offset`, the largest mean error
  of a channel over all positions: what a wrong weight or bias leaves and rounding
  averages away.

A stage passes when both its own error and its own offset are at most `floor_factor` (4)
times PyTorch float32's there. A wrong weight, a swapped key or a missing bias is off by orders of
magnitude more than rounding at the stage that uses it, whatever the depth; rounding
amplified by the stages before (the nearly one-hot cross-attention of a full-size model
with random weights grows it ~2x per decoder layer) no longer enters the verdict.

End to end. The ordinary forward pass of each framework is compared too (max rel err =
max|MindSpore - PyTorch| / max|PyTorch|, cosine, and both against float64). These numbers
show what a user sees; they judge the output only: its max rel err within the fixed
tolerance (1e-4), or MindSpore no further from float64 than `floor_factor` x PyTorch
float32 is (worst of `draws` + 1 runs on inputs moved by one ulp). Without a float64
run (`fp64_reference=False`) every stage is judged by the fixed tolerances alone.

A third framework. `run_parity(onnx=...)` also runs an exported ONNX graph in ONNX
Runtime and compares it with PyTorch end to end, by the same output rule, on every stage
the file exposes (`ipt-ms export --with-stages`; `run_parity(onnx_export=...)` exports
such a file on the fly). An exported graph cannot take given stage inputs.
"""

from __future__ import annotations

import copy
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec
from parity.diff import (
    DEFAULT_DRAWS,
    DEFAULT_FLOOR_FACTOR,
    DEFAULT_OUTPUT_TOL,
    DEFAULT_STAGE_TOL,
    FLOAT32_ROUNDOFF,
    LocalRuns,
    StageDiff,
    compare_available,
    compare_stages,
)
from parity.report import ParityReport


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


def mindspore_stages(net, x: np.ndarray, task_idx: int,
                     stage_inputs: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every stage of the MindSpore network; with `stage_inputs` (one array per stage name),
    each stage computed from those values instead of the stage before (`IPT.construct`)."""
    import mindspore as ms

    names = net.spec.stage_names(task_idx)
    if stage_inputs is None:
        _, stages = net(ms.Tensor(x), task_idx, True)
    else:  # mutable: a tuple of tensors is otherwise a compile-time constant in Graph mode
        given = ms.mutable(tuple(ms.Tensor(np.ascontiguousarray(stage_inputs[n], np.float32)) for n in names))
        _, stages = net(ms.Tensor(x), task_idx, True, False, given)
    return {n: s.asnumpy() for n, s in zip(names, stages)}


def torch_stages(model, x: np.ndarray, task_idx: int, dtype=None,
                 stage_inputs: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Stages of the twin; `dtype=torch.float64` for the float64 reference (model must match);
    `stage_inputs` as in `mindspore_stages`."""
    import torch

    names = model.spec.stage_names(task_idx)

    def tensor(array):
        t = torch.from_numpy(np.ascontiguousarray(array))
        return t if dtype is None else t.to(dtype)

    given = None if stage_inputs is None else [tensor(stage_inputs[n]) for n in names]
    with torch.no_grad():
        _, stages = model(tensor(x), task_idx, with_stages=True, stage_inputs=given)
    return {n: s.detach().cpu().numpy() for n, s in zip(names, stages)}


def nudge(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`array` (float32 values) with each element moved by up to about one float32 ulp."""
    factor = 1.0 + rng.uniform(-2.0, 2.0, array.shape) * FLOAT32_ROUNDOFF
    return (array.astype(np.float64) * factor).astype(np.float32)


@dataclass
class TorchReference:
    """What the PyTorch side computes for one task and input, to judge any MindSpore network by.

    `fp64` holds the float64 trace (None without a float64 run); `given` its values rounded to
    float32 (every stage's inputs); `exact` the float64 twin on `given`; `alone_draws` PyTorch
    float32 on `given` and on nudged copies; `fp32_draws` PyTorch float32 end to end on
    nudged inputs.
    """

    x: np.ndarray
    task_idx: int
    names: list[str]
    fp32: dict[str, np.ndarray]
    fp64: dict[str, np.ndarray] | None = None
    given: dict[str, np.ndarray] | None = None
    exact: dict[str, np.ndarray] | None = None
    alone_draws: list[dict[str, np.ndarray]] = field(default_factory=list)
    fp32_draws: list[dict[str, np.ndarray]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def torch_reference(model, x: np.ndarray, task_idx: int, *, fp64: bool = True, draws: int = DEFAULT_DRAWS,
                    seed: int = 0) -> TorchReference:
    """Run the twin for `run_parity`: float32 end to end and, with `fp64`, the float64 trace,
    every stage alone in float64, and `draws` + 1 float32 runs of every stage alone."""
    import torch

    start = time.perf_counter()
    ref = TorchReference(x, task_idx, model.spec.stage_names(task_idx), torch_stages(model, x, task_idx))
    ref.timings["pytorch"] = time.perf_counter() - start
    if not fp64:
        return ref
    start = time.perf_counter()
    model64 = copy.deepcopy(model).double()
    ref.fp64 = torch_stages(model64, x, task_idx, dtype=torch.float64)
    ref.given = {n: v.astype(np.float32) for n, v in ref.fp64.items()}
    ref.exact = torch_stages(model64, x, task_idx, dtype=torch.float64, stage_inputs=ref.given)
    del model64
    ref.timings["pytorch float64, end to end and each stage alone"] = time.perf_counter() - start
    start = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    ref.alone_draws = [torch_stages(model, x, task_idx, stage_inputs=ref.given)]
    for _ in range(draws):
        ref.alone_draws.append(torch_stages(model, nudge(x, rng), task_idx,
                                            stage_inputs={n: nudge(v, rng) for n, v in ref.given.items()}))
        ref.fp32_draws.append(torch_stages(model, nudge(x, rng), task_idx))
    ref.timings[f"pytorch float32 draws ({draws + 1})"] = time.perf_counter() - start
    return ref


def judge_mindspore(net, ref: TorchReference, stage_tol: float = DEFAULT_STAGE_TOL,
                    output_tol: float = DEFAULT_OUTPUT_TOL, floor_factor: float = DEFAULT_FLOOR_FACTOR,
                    timings: dict | None = None) -> list[StageDiff]:
    """Every stage of the MindSpore network `net` against `ref`: end to end and, when `ref`
    has a float64 run, each stage alone (which decides)."""
    timings = {} if timings is None else timings
    start = time.perf_counter()
    ms_out = mindspore_stages(net, ref.x, ref.task_idx)
    timings.setdefault("mindspore first call", time.perf_counter() - start)
    local = None
    if ref.given is not None:
        start = time.perf_counter()
        local = LocalRuns(mindspore_stages(net, ref.x, ref.task_idx, ref.given), ref.exact, ref.alone_draws)
        timings.setdefault("mindspore, each stage alone", time.perf_counter() - start)
    return compare_stages(ms_out, ref.fp32, ref.names, stage_tol, output_tol, ref.fp64, floor_factor,
                          ref.fp32_draws, local)


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


def run_parity(weights: str, *, ckpt: str | None = None, task: str | int = 0, image: str | None = None,
               seed: int = 0, mode: str = "graph", device: str = "auto", stage_tol: float = DEFAULT_STAGE_TOL,
               output_tol: float = DEFAULT_OUTPUT_TOL, fp64_reference: bool = True,
               floor_factor: float = DEFAULT_FLOOR_FACTOR, draws: int = DEFAULT_DRAWS, onnx: list[str] | None = None,
               onnx_export: str | None = None, progress: bool = False, **overrides) -> ParityReport:
    """Run both frameworks on one input and compare every stage.

    `weights` (any format) feeds the PyTorch twin, and the MindSpore network too unless
    `ckpt` names a separate MindSpore checkpoint (e.g. the output of `ipt-ms convert`).
    With `fp64_reference` the twin also runs in float64, and every stage is judged alone
    (the module docstring); `draws` nudged-input PyTorch float32 runs widen each floor.
    A third framework, ONNX Runtime, joins with `onnx` (exported files; the one holding
    this task is used) or `onnx_export` ("mindspore" or "torch": export one now, with
    every stage exposed). `progress` names each step on stderr as it runs (a full-size
    model takes 20 to 70 s, most of it in MindSpore's first, compiling call).
    """
    from ipt_ms.progress import StepProgress

    if draws < 0:
        raise IPTError(f"draws must be >= 0, got {draws}")
    total = 6 + bool(onnx or onnx_export)
    with StepProgress(f"parity {task}", total, enable=progress) as steps:
        return _run_parity(steps, weights, ckpt, task, image, seed, mode, device, stage_tol, output_tol,
                           fp64_reference, floor_factor, draws, onnx, onnx_export, overrides)


def _run_parity(steps, weights, ckpt, task, image, seed, mode, device, stage_tol, output_tol, fp64_reference,
                floor_factor, draws, onnx, onnx_export, overrides) -> ParityReport:
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
    steps.start("building the PyTorch twin")
    model = build_torch_model(spec, torch_state)
    steps.start("PyTorch: float32" + (f", float64, every stage alone and {draws + 1} float32 draws"
                                      if fp64_reference else ""))
    ref = torch_reference(model, x, task_idx, fp64=fp64_reference, draws=draws, seed=seed)
    steps.start(f"MindSpore end to end and each stage alone ({mode} mode"
                f"{', the first calls compile' if mode == 'graph' else ''})")
    stages = judge_mindspore(net, ref, stage_tol, output_tol, floor_factor, timings)
    timings.update(ref.timings)
    others, sources = {}, {}
    if onnx or onnx_export:
        steps.start("ONNX Runtime" + (f" (exporting from {onnx_export} first)" if onnx_export and not onnx else ""))
        with tempfile.TemporaryDirectory(prefix="ipt-parity-onnx-") as workdir:
            predictor, sources["onnx"] = _onnx_predictor(spec, task_idx, onnx, onnx_export, net, model, workdir)
            start = time.perf_counter()
            onnx_out = predictor.stages(x)
            timings["onnxruntime"] = time.perf_counter() - start
        others["onnx"] = compare_available(onnx_out, ref.fp32, ref.names, stage_tol, output_tol, ref.fp64,
                                           floor_factor, ref.fp32_draws)
    from ipt_ms import machine
    from ipt_ms.models import Conv2d

    convs = [cell.as_matmul for _, cell in net.cells_and_names() if isinstance(cell, Conv2d)]
    environment = {"mindspore": ms.__version__, "torch": torch.__version__, "numpy": np.__version__,
                   "python": platform.python_version(), "machine": platform.machine(), "cpu": machine.one_line(),
                   "mindspore convolutions": "im2col + matmul" if all(convs) else "native"}
    if others:
        import onnxruntime

        environment["onnxruntime"] = onnxruntime.__version__
    return ParityReport(task=spec.task_names[task_idx], input=description, mode=mode, device=device,
                        stage_tol=stage_tol, output_tol=output_tol, stages=stages, spec=spec.to_dict(),
                        floor_factor=floor_factor, draws=draws if fp64_reference else 0,
                        timings=timings, environment=environment, others=others, sources=sources)


__all__ = ["DEFAULT_DRAWS", "DEFAULT_FLOOR_FACTOR", "DEFAULT_OUTPUT_TOL", "DEFAULT_STAGE_TOL", "FLOAT32_ROUNDOFF",
           "LocalRuns", "ParityReport", "StageDiff", "TorchReference", "compare_available", "compare_stages",
           "judge_mindspore", "make_input", "mindspore_stages", "nudge", "run_parity", "torch_reference",
           "torch_stages"]
