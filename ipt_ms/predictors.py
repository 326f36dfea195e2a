"""One entry point for "run this weights file on tiles, in this framework".

A predictor is a callable mapping a numpy batch of input tiles (N, C, P, P) float32 in
[0, 255] to output tiles (N, C, P*s, P*s), with attributes `framework`, `spec`,
`task_idx`, `scale` and `provenance` (the weights file's record, `ipt_ms.provenance`; None
when the file records none). The tiling code (`ipt_ms.tiling`) only ever sees predictors, so
restore/eval/parity-bench treat every framework the same way.
"""

from __future__ import annotations

from ipt_ms.errors import IPTError
from ipt_ms.levers import Levers, parse_policy
from ipt_ms.spec import IPTSpec

FRAMEWORKS = ("mindspore", "torch", "onnx")
_ALIASES = {"ms": "mindspore", "mindspore": "mindspore", "torch": "torch", "pytorch": "torch", "pt": "torch",
            "onnx": "onnx", "onnxruntime": "onnx", "ort": "onnx"}


def normalise_framework(name: str) -> str:
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise IPTError(f"unknown framework {name!r}; choose one of {', '.join(FRAMEWORKS)}") from None


def torch_device(device: str) -> str:
    """The PyTorch device for a --device value: CUDA for GPU (or auto when CUDA exists), else CPU."""
    import torch

    name = str(device).lower()
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise IPTError("device GPU requested, but this PyTorch build/machine has no CUDA device")
        return "cuda"
    if name == "auto" and torch.cuda.is_available():
        return "cuda"
    if name in ("auto", "cpu"):
        return "cpu"
    raise IPTError(f"device {device!r} is not available to PyTorch (use CPU, GPU or auto)")


def create_predictor(framework: str, weights: str, task: str | int, *, batch_size: int = 64,
                     device: str = "auto", mode: str = "graph", progress: bool = False,
                     levers: str | Levers | None = None, **overrides) -> tuple[object, IPTSpec]:
    """Load `weights` into `framework` and return (predictor for `task`, spec).

    A single-task file that does not record its task (the released IPT_dn30.pt, ...) is run
    for a well-formed task name of its scale (see `IPTSpec.name_placeholder_task`).
    `levers` (MindSpore on CPU): ``stored``, ``trial``, ``default`` or None for
    `IPT_MS_LEVERS` (`ipt_ms.levers.choose_levers`); the MindSpore predictor's `levers`
    attribute says which were in effect.
    """
    framework = normalise_framework(framework)
    if isinstance(levers, str):
        parse_policy(levers, "levers")  # a bad value is one line before anything loads, in every framework
    if framework == "onnx":  # `weights` is a file written by `ipt-ms export`; it records spec and task
        from ipt_ms.onnx_runtime import OnnxRuntimePredictor

        predictor = OnnxRuntimePredictor(weights, task, batch_size, progress=progress, device=device, **overrides)
        predictor.provenance = predictor.info.provenance
        return predictor, predictor.spec
    from ipt_ms.convert.weights import log_weights_variant, official_state, read_weight_file, resolve_spec

    read = read_weight_file(weights, overrides.pop("weights_variant", None))
    spec = resolve_spec(read, **overrides)
    state = official_state(read, spec)
    log_weights_variant(read)
    spec = spec.name_placeholder_task(task)
    if framework == "torch":
        from parity.torch_runner import TorchPredictor, build_torch_model

        model = build_torch_model(spec, state)
        predictor = TorchPredictor(model, spec, task, batch_size, progress=progress, device=torch_device(device))
    else:
        from ipt_ms.inference import build_levered_model, predictor_for
        from ipt_ms.runtime import configure

        configure(device, mode)
        net = build_levered_model(spec, state, levers, task)  # a stored (or, under trial, measured) choice
        predictor = predictor_for(net, spec, task, batch_size=batch_size, progress=progress)
    predictor.provenance = read.provenance
    return predictor, spec
