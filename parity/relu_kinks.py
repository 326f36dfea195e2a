"""ReLU kinks: pre-activations too close to zero for float32 to decide which side they are on.

relu'(z) jumps from 0 to 1 at z = 0. A pre-activation z whose exact (float64) value lies
within float32 rounding of 0 can come out positive in one correct float32 implementation
and negative in another; the two then back-propagate through different masks, and the
gradient of the layer that produced z differs by that element's whole contribution (one
token's outer product in a Linear weight: ~1e-2 of the tensor's scale on the tiny model).
No amount of care in either framework removes this -- it is the gradient's discontinuity,
not an arithmetic error -- and which side a framework lands on changes with the CPU's
kernels (AVX2 vs AVX-512 blocking), so a gradient comparison that ignores it passes or
fails by luck.

What a parity check can do instead, without widening its tolerance:

1. find the kinks: every ReLU input whose float64 value is within `band_factor` times the
   largest float32-vs-float64 error of that same ReLU input tensor (PyTorch's), recorded by
   `ReluProbe` while the twin runs;
2. take each framework's float32 gradient against a float64 reference computed with the
   ReLU masks *that framework* used at those kinks (`ReluProbe(flips=...)` toggles them):
   PyTorch's side is read from its float32 pre-activations; the other framework's side is
   the one whose reference explains its gradient (`resolve_kinks`, a least-squares fit of
   the per-kink gradient contributions, checked by an exact float64 run with the chosen
   masks).

Everywhere else the masks are float64's, the tolerance is unchanged, and an error that is
not one of these discrete contributions stays in the residual and fails the check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: a ReLU input is a kink when |z_float64| <= KINK_BAND * max|z_float32 - z_float64| of its tensor
KINK_BAND = 10.0
#: `resolve_kinks` fits at most this many kinks (one float64 backward pass each)
MAX_FIT_KINKS = 64

Flip = tuple[int, int]  # (ReLU call number in forward order, flat element index)


class ReluProbe(TorchFunctionMode):
    """Records every `F.relu` input of a forward pass (nn.ReLU calls F.relu too), in call order,
    with the name of the module that called it; toggles the ReLU mask at `flips`.

    A toggled element keeps z (its forward value moves by |z|, inside the kink band) and
    back-propagates through the other side of the kink. Untoggled, x * (x > 0) is ReLU
    exactly, value and gradient.
    """

    def __init__(self, flips: frozenset[Flip] | set[Flip] = frozenset(), record: bool = True):
        super().__init__()
        self.flips = frozenset(flips)
        self.record = record
        self.inputs: list[torch.Tensor] = []
        self.sites: list[str] = []
        self._calls = 0
        self._module_stack: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.relu:
            return func(*args, **kwargs)
        x = args[0]
        call = self._calls
        self._calls += 1
        if self.record:
            self.inputs.append(x.detach().clone())
            self.sites.append(self._module_stack[-1] if self._module_stack else "")
        toggled = [i for c, i in self.flips if c == call]
        if not toggled:
            return func(*args, **kwargs)
        mask = (x.detach() > 0).to(x.dtype)
        flat = mask.view(-1)
        for i in toggled:
            flat[i] = 1.0 - flat[i]
        return x * mask

    @contextlib.contextmanager
    def attached(self, model: torch.nn.Module) -> Iterator[ReluProbe]:
        """Active while a forward of `model` runs; names each ReLU call by its module."""
        def enter(name: str):
            def hook(_module, _inputs) -> None:
                self._module_stack.append(name)
            return hook

        def leave(_module, _inputs, _output) -> None:  # returning a value would replace the output
            self._module_stack.pop()

        handles = []
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
        try:
            with self:
                yield self
        finally:
            for handle in handles:
                handle.remove()


@dataclass(frozen=True)
class Kink:
    """One ReLU input within float32 rounding of zero."""

    call: int              # ReLU call number in forward order
    site: str              # module that made the call
    index: tuple[int, ...]  # element index within that ReLU input
    flat: int
    value64: float         # float64 pre-activation
    band: float            # |value64| <= band makes it a kink
    torch_positive: bool   # the side PyTorch float32 landed on

    @property
    def flip(self) -> Flip:
        return (self.call, self.flat)

    def describe(self) -> str:
        where = f"{self.site or '<model>'} relu#{self.call} {list(self.index)}"
        return f"{where}: z64 {self.value64:+.2e} (band {self.band:.1e})"


def find_kinks(inputs32: list[torch.Tensor], inputs64: list[torch.Tensor], sites: list[str],
               band_factor: float = KINK_BAND) -> list[Kink]:
    """Kinks of one forward pass from the ReLU inputs of its float32 and float64 runs."""
    if len(inputs32) != len(inputs64):
        raise ValueError(f"float32 run made {len(inputs32)} ReLU calls, float64 run {len(inputs64)}")
    kinks = []
    for call, (z32, z64) in enumerate(zip(inputs32, inputs64)):
        z32, z64 = z32.double().numpy(), z64.double().numpy()
        band = band_factor * float(np.abs(z32 - z64).max())
        for flat in np.flatnonzero(np.abs(z64) <= band):
            index = tuple(int(i) for i in np.unravel_index(flat, z64.shape))
            kinks.append(Kink(call, sites[call], index, int(flat), float(z64.flat[flat]), band,
                              bool(z32.flat[flat] > 0)))
    return kinks


def torch_side_flips(kinks: list[Kink]) -> frozenset[Flip]:
    """The toggles (relative to float64's masks) that give PyTorch float32's masks."""
    return frozenset(k.flip for k in kinks if k.torch_positive != (k.value64 > 0))


Gradients = dict[str, np.ndarray]


def relative_errors(candidate: Gradients, reference: Gradients) -> dict[str, float]:
    """Per tensor: max|candidate - reference| / max|reference|."""
    out = {}
    for key, ref in reference.items():
        scale = float(np.abs(ref).max())
        diff = float(np.abs(candidate[key] - ref).max())
        out[key] = diff / scale if scale > 0 else diff
    return out


def resolve_kinks(candidate: Gradients, reference_fn: Callable[[frozenset[Flip]], Gradients], kinks: list[Kink],
                  base_flips: frozenset[Flip], base: Gradients | None = None,
                  max_kinks: int = MAX_FIT_KINKS) -> tuple[frozenset[Flip], Gradients]:
    """The kink masks that explain `candidate`, and the float64 reference computed with them.

    `reference_fn(flips)` returns float64 gradients with the ReLU masks toggled at `flips`
    (relative to float64's own); `base` is `reference_fn(base_flips)` if already computed.
    Each kink's contribution c_k = reference(base ^ {k}) - reference(base) is one extra
    float64 pass; the toggles t minimise sum over tensors of |candidate - base - C t|^2 /
    scale^2 and are rounded to 0/1. The returned reference is recomputed exactly with
    the chosen masks, so nothing of the linear fit leaks into the comparison.
    """
    base = reference_fn(base_flips) if base is None else base
    if not kinks or len(kinks) > max_kinks:
        return base_flips, base
    keys = list(base)
    scales = {k: float(np.abs(base[k]).max()) or 1.0 for k in keys}

    def stacked(grads: Gradients) -> np.ndarray:
        return np.concatenate([np.ravel(grads[k]) / scales[k] for k in keys])

    origin = stacked(base)
    columns = [stacked(reference_fn(base_flips ^ {k.flip})) - origin for k in kinks]
    toggles, *_ = np.linalg.lstsq(np.stack(columns, axis=1), stacked(candidate) - origin, rcond=None)
    chosen = frozenset(k.flip for k, t in zip(kinks, toggles) if t > 0.5)
    if not chosen:
        return base_flips, base
    flips = base_flips ^ chosen
    return flips, reference_fn(flips)
