"""MindSpore execution context: device and mode, chosen once per process.

The environment defaults that must precede `import mindspore` (oneDNN ISA, log level)
are set by `import ipt_ms`; this module is for the choices made at run time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from ipt_ms.errors import IPTError

DEVICES = ("auto", "CPU", "GPU", "Ascend")
MODES = ("graph", "pynative")
_ALIASES = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend", "npu": "Ascend", "auto": "auto"}
#: every spelling `resolve_device` accepts (configs validate against it)
DEVICE_SPELLINGS = tuple(dict.fromkeys(DEVICES + tuple(_ALIASES)))


def available_devices() -> list[str]:
    """Device targets this MindSpore build can use on this machine, best first."""
    import mindspore.device_context as dc

    found = []
    for name, module in (("Ascend", dc.ascend), ("GPU", dc.gpu)):
        try:
            if module.is_available():
                found.append(name)
        except Exception:  # a plugin that is not installed raises instead of answering False
            pass
    return found + ["CPU"]


def resolve_device(device: str = "auto") -> str:
    name = _ALIASES.get(str(device).lower())
    if name is None:
        raise IPTError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    available = available_devices()
    if name == "auto":
        return available[0]
    if name not in available:
        raise IPTError(f"device {name} requested, but this MindSpore build/machine offers only "
                       f"{', '.join(available)}")
    return name


def configure(device: str = "auto", mode: str = "graph") -> str:
    """Select the MindSpore device target and execution mode; returns the device used."""
    import mindspore as ms

    if mode not in MODES:
        raise IPTError(f"unknown mode {mode!r}; choose graph or pynative")
    target = resolve_device(device)
    current = ms.get_current_device()
    current_target = getattr(current, "device_target", None) or (current[0] if current else None)
    if current_target != target:
        ms.set_device(target)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    return target


#: `1`/`0` forces the convolutions to run as im2col + matmul or natively (default: on CPU only)
CONV_AS_MATMUL_ENV = "IPT_MS_CONV_AS_MATMUL"


def _env_switch(name: str) -> bool | None:
    """An on/off environment setting: True, False, or None when unset or ``auto``."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    if value not in ("", "auto"):
        raise IPTError(f"{name}={value!r}: use 1, 0 or auto")
    return None


def conv_as_matmul_forced() -> bool | None:
    """The user's `IPT_MS_CONV_AS_MATMUL`: True/False when set to force a kernel family, None for
    unset or ``auto`` (a stored per-machine choice, `ipt_ms.levers`, may then decide)."""
    return _env_switch(CONV_AS_MATMUL_ENV)


def conv_as_matmul_default() -> bool:
    """Whether new networks run their convolutions as im2col + matmul (`Conv2d.as_matmul`).

    On by default on CPU (docs/runtime.md); `IPT_MS_CONV_AS_MATMUL=0|1` overrides
    it, which is how CI runs the demo's parity with either kernel family."""
    forced = conv_as_matmul_forced()
    if forced is not None:
        return forced
    import mindspore as ms

    return ms.get_context("device_target") == "CPU"


#: `0` keeps MindSpore's own softmax gradient on CPU (`ipt_ms.models.cpu_grads`)
CPU_GRADIENTS_ENV = "IPT_MS_CPU_GRADIENTS"


def cpu_gradients_default() -> bool:
    """Whether new networks use the written-out softmax gradient (`ipt_ms.models.cpu_grads`):
    on CPU unless `IPT_MS_CPU_GRADIENTS=0` (the stock gradient, e.g. to compare the two)."""
    if _env_switch(CPU_GRADIENTS_ENV) is False:
        return False
    import mindspore as ms

    return ms.get_context("device_target") == "CPU"


def conv_native_in_training() -> bool:
    """Whether im2col networks (`conv_as_matmul_default`) still train with native convolutions.

    Up to AVX2, oneDNN's plain-NCHW convolution and its two gradients beat im2col + matmul in
    a training step (AMD EPYC, AVX2, batch 2: 64->64 3x3 at 48x48 16 against 30 ms, 64->3 at
    96x96 22 against 56 ms; docs/runtime.md), while inference keeps im2col, which wins there.
    With AVX-512 oneDNN has no fast kernel for that layout, so im2col trains too. A set
    `IPT_MS_CONV_AS_MATMUL` decides for training as well."""
    if conv_as_matmul_forced() is not None:
        return False
    from ipt_ms.machine import isa_in_effect

    return not isa_in_effect().startswith("AVX512")


def cpu_training_levers() -> dict[str, str]:
    """What a network trained on this CPU would use (for `ipt-ms doctor`), in words."""
    forced = conv_as_matmul_forced()
    if forced is False or conv_native_in_training():
        convolutions = "native"
    else:
        convolutions = "im2col, one matmul per image"
    softmax = ("MindSpore's" if _env_switch(CPU_GRADIENTS_ENV) is False
               else "written out (ipt_ms.models.cpu_grads)")
    return {"convolutions": convolutions, "softmax_gradient": softmax,
            "setting": f"${CONV_AS_MATMUL_ENV}, ${CPU_GRADIENTS_ENV} (docs/runtime.md, 'Training on CPU')"}


@contextlib.contextmanager
def mindspore_log_silenced() -> Iterator[list[str]]:
    """Keep MindSpore's Python log ('ME.*' loggers) off stderr during a call whose failure
    ipt-ms reports itself; yields the list its messages are collected in.

    MindSpore logs a failed checkpoint save (CRITICAL) or ONNX write (ERROR, and then
    returns without a file) on stderr; the caller turns the failure into one line and can
    quote the collected message (e.g. "[Errno 28] No space left on device").
    """
    from mindspore import log as ms_log

    ms_log.get_level()  # creates MindSpore's logger ('ME.mindspore.log.<pid>') if it does not exist yet
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    collect = Collect()
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("ME.")]
    saved = [list(lg.handlers) for lg in loggers]
    try:
        for lg in loggers:
            lg.handlers = [collect]
        yield messages
    finally:
        for lg, handlers in zip(loggers, saved):
            lg.handlers = handlers
