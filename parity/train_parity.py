"""Training parity: the MindSpore training step against the same step in the PyTorch twin.

Both frameworks start from the same weights and see the same batches:

* step 1 -- the loss (L1, contrastive, total) and every parameter's gradient, as the
  MindSpore `TrainStep` computes them (`grad_fn`, compiled) vs `loss.backward()`;
* N steps of Adam -- the loss curves, from `TrainStep` (`ipt_ms.train.step.Adam`, compiled) and
  `torch.optim.Adam`, plus the weights at the end.

The PyTorch side mirrors `ipt_ms.train` exactly: L1 + weight * (Eq. 5 or SupCon), torch's
`clip_grad_norm_`, and gradients of the heads/tails a batch did not use set to zero
rather than None, because MindSpore (like the official code) updates every parameter
every step; `torch.optim.Adam` would otherwise skip them and their Adam moments would
stop decaying.

    python -m parity.train_parity --steps 20 --contrastive eq5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)
from ipt_ms.spec import IPTSpec

GRAD_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-4
CURVE_TOLERANCE = 1e-3
#: the tiny model at 8 features (IPTSpec.tiny has 16): the tolerances, the ReLU-kink budget
#: (`parity.relu_kinks.MAX_FIT_KINKS`) and the figures of docs/training.md were set on it
TRAIN_PARITY_FEATS = 8


# ------------------------------------------------------------------------------- PyTorch side
def torch_eq5(features):
    """Eq. 5 of the paper in PyTorch (same definition as `ipt_ms.train.losses.contrastive_eq5`)."""
    import torch
    import torch.nn.functional as F

    B, N, E = features.shape
    f = F.normalize(features.float(), dim=-1)
    flat = f.reshape(B * N, E)
    cos = (flat @ flat.T).reshape(B, N, B, N)
    other = (1.0 - torch.eye(B, dtype=f.dtype)).reshape(B, 1, B, 1)
    denominator = (cos.exp() * other).sum(dim=2)
    positive = f @ f.transpose(1, 2)
    return (denominator.log() - positive).sum() / (B * N * N)


def torch_supcon(features, temperature: float = 0.07, base_temperature: float = 0.07):
    """The official SupCon variant in PyTorch (same definition as `ipt_ms.train.losses.supcon`)."""
    import torch
    import torch.nn.functional as F

    B, N, E = features.shape
    M = B * N
    flat = F.normalize(features.float(), dim=-1).reshape(M, E)
    logits = flat @ flat.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    not_self = 1.0 - torch.eye(M, dtype=flat.dtype)
    same = torch.eye(B, dtype=flat.dtype).reshape(B, 1, B, 1).expand(B, N, B, N).reshape(M, M)
    positives = same * not_self
    log_prob = logits - torch.log((logits.exp() * not_self).sum(dim=1, keepdim=True) + 1e-8)
    mean_log_prob_pos = (positives * log_prob).sum(dim=1) / positives.sum(dim=1)
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


def torch_loss(model, lr, hr, task_idx: int, contrastive: str, weight: float, temperature: float = 0.07):
    """(total, l1, contrastive) for the PyTorch twin, as `ipt_ms.train.losses.IPTLoss`."""
    import torch

    use_con = contrastive != "none" and weight != 0.0
    if use_con:
        out, features = model(lr, task_idx, with_features=True)
        con = torch_supcon(features, temperature) if contrastive == "supcon" else torch_eq5(features)
    else:
        out = model(lr, task_idx)
        con = torch.zeros(())
    l1 = (out - hr).abs().mean()
    return l1 + weight * con, l1, con


class TorchTrainer:
    """The PyTorch twin trained the way `ipt_ms.train.step.TrainStep` trains."""

    def __init__(self, spec: IPTSpec, state: dict[str, np.ndarray], lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 clip_norm: float | None = None, contrastive: str = "eq5", weight: float = 0.1):
        import torch

        from parity.torch_runner import build_torch_model

        self.model = build_torch_model(spec, state).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.clip_norm, self.contrastive, self.weight = clip_norm, contrastive, weight

    def gradients(self, lr: np.ndarray, hr: np.ndarray, task_idx: int):
        """Loss terms and {official key: gradient} for one batch (dense: unused -> 0)."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        total, l1, con = torch_loss(self.model, torch.from_numpy(lr), torch.from_numpy(hr), task_idx,
                                    self.contrastive, self.weight)
        total.backward()
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        names = {id(p): n for n, p in self.model.named_parameters()}
        grads = {names[id(p)]: p.grad.detach().numpy().copy() for p in self.params}
        return (total.item(), l1.item(), con.item()), grads

    def step(self, lr: np.ndarray, hr: np.ndarray, task_idx: int) -> float:
        import torch

        (total, _, _), _ = self.gradients(lr, hr, task_idx)
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        self.optimizer.step()
        return total

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def float64_gradients(self, lr: np.ndarray, hr: np.ndarray, task_idx: int,
                          flips: frozenset = frozenset()) -> dict[str, np.ndarray]:
        """Gradients of a float64 copy of the model: the reference that shows how far
        float32 itself (in either framework) can be from the exact gradient. `flips`
        toggles ReLU masks at kinks (`parity.relu_kinks`)."""
        import copy

        import torch

        from parity.relu_kinks import ReluProbe

        model = copy.deepcopy(self.model).double()
        with ReluProbe(flips, record=False).attached(model):
            total, _, _ = torch_loss(model, torch.from_numpy(lr).double(), torch.from_numpy(hr).double(), task_idx,
                                     self.contrastive, self.weight)
        total.backward()
        return {n: (p.grad.numpy() if p.grad is not None else np.zeros(tuple(p.shape)))
                for n, p in model.named_parameters() if p.requires_grad}

    def relu_kinks(self, lr: np.ndarray, hr: np.ndarray, task_idx: int, band_factor: float | None = None) -> list:
        """ReLU inputs of this batch's forward within float32 rounding of zero (`parity.relu_kinks`)."""
        import copy

        import torch

        from parity.relu_kinks import KINK_BAND, ReluProbe, find_kinks

        runs = []
        for dtype, model in ((torch.float32, self.model), (torch.float64, copy.deepcopy(self.model).double())):
            with torch.no_grad(), ReluProbe().attached(model) as probe:
                torch_loss(model, torch.from_numpy(lr).to(dtype), torch.from_numpy(hr).to(dtype), task_idx,
                           self.contrastive, self.weight)
            runs.append(probe)
        return find_kinks(runs[0].inputs, runs[1].inputs, runs[1].sites,
                          KINK_BAND if band_factor is None else band_factor)


# ------------------------------------------------------------------------------- MindSpore side
class MindSporeTrainer:
    """The real `ipt_ms.train` step (IPTLoss + TrainStep), for one parity run."""

    def __init__(self, spec: IPTSpec, state: dict[str, np.ndarray], lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 clip_norm: float | None = None, contrastive: str = "eq5", weight: float = 0.1):
        from mindspore import nn

        from ipt_ms.inference import build_model
        from ipt_ms.train.losses import IPTLoss
        from ipt_ms.train.step import TrainStep, build_adam

        self.spec = spec
        self.net = build_model(spec, state)
        self.net.set_train(True)
        self.optimizer = build_adam(self.net.trainable_params(), lr, betas, eps, weight_decay)
        self.step_cell = TrainStep(IPTLoss(self.net, contrastive, weight), self.optimizer, clip_norm)

        step_cell = self.step_cell

        class _Gradients(nn.Cell):  # the step's own value_and_grad, compiled like the step
            def __init__(self):
                super().__init__(auto_prefix=False)
                self.inner = step_cell

            def construct(self, lr, hr, task_idx: int, scale):
                return self.inner.grad_fn(lr, hr, task_idx, scale)

        self._gradients = _Gradients()

    def gradients(self, lr: np.ndarray, hr: np.ndarray, task_idx: int):
        import mindspore as ms

        from ipt_ms.convert.keymap import torch_key

        (_, total, l1, con), grads = self._gradients(ms.Tensor(lr), ms.Tensor(hr), task_idx,
                                                     ms.Tensor(1.0, ms.float32))
        names = [torch_key(p.name) for p in self.optimizer.parameters]
        return (float(total), float(l1), float(con)), {n: g.asnumpy() for n, g in zip(names, grads)}

    def step(self, lr: np.ndarray, hr: np.ndarray, task_idx: int) -> float:
        import mindspore as ms

        return float(self.step_cell(ms.Tensor(lr), ms.Tensor(hr), task_idx).asnumpy()[0])

    def state(self) -> dict[str, np.ndarray]:
        from ipt_ms.convert.keymap import mindspore_to_torch
        from ipt_ms.train.weights import network_arrays

        return mindspore_to_torch(network_arrays(self.net), self.spec)


# ------------------------------------------------------------------------------- comparison
def make_batches(spec: IPTSpec, steps: int, batch_size: int = 4, seed: int = 0) -> list[tuple]:
    """`steps` batches (lr, hr, task) cycling over the tasks: smooth random images in [0, 255]
    with a degraded input (bicubic downscale for SR, noise otherwise)."""
    from ipt_ms.data.imresize import imresize

    rng = np.random.default_rng(seed)
    out = []
    for k in range(steps):
        task = k % spec.num_tasks
        s = spec.scales[task]
        size = spec.patch_size * s
        coarse = rng.uniform(0, 255, (batch_size, size // 4 + 1, size // 4 + 1, 3))
        hr = np.stack([imresize(c, output_shape=(size, size)) for c in coarse]).clip(0, 255)
        if s > 1:
            lr = np.stack([imresize(h, 1.0 / s) for h in hr])
        else:
            lr = np.clip(hr + rng.normal(0, 30, hr.shape), 0, 255)
        to_chw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
        out.append((to_chw(lr), to_chw(hr), task))
    return out


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@dataclass
class TrainParityReport:
    """Step-1 loss/gradient errors and the N-step loss curves of both frameworks.

    Gradient errors account for ReLU kinks (`parity.relu_kinks`): where a pre-activation is
    within float32 rounding of zero, each framework is compared with the float64 gradient
    for the mask it used there. `grad_max_rel_err_raw` is the plain MindSpore-vs-PyTorch
    difference, kink contributions included.
    """

    contrastive: str
    steps: int
    loss_rel_err: dict[str, float]
    grad_max_rel_err: float
    worst_grad: str
    curve_mindspore: list[float]
    curve_torch: list[float]
    curve_max_rel_err: float
    weights_max_rel_err: float
    grad_mindspore_vs_float64: float = float("nan")
    grad_torch_vs_float64: float = float("nan")
    grad_tolerance: float = GRAD_TOLERANCE
    curve_tolerance: float = CURVE_TOLERANCE
    per_param: dict[str, float] = field(default_factory=dict)
    grad_max_rel_err_raw: float = float("nan")
    kinks: list[str] = field(default_factory=list)
    kinks_sides_differ: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (max(self.loss_rel_err.values()) <= LOSS_TOLERANCE and self.grad_max_rel_err <= self.grad_tolerance
                and self.curve_max_rel_err <= self.curve_tolerance)

    def summary(self) -> str:
        losses = ", ".join(f"{k} {v:.2e}" for k, v in self.loss_rel_err.items())
        kinks = f"{len(self.kinks)} ReLU kinks, {len(self.kinks_sides_differ)} taken on different sides"
        if self.kinks_sides_differ:
            kinks += f" ({'; '.join(self.kinks_sides_differ)}; raw gradient rel err {self.grad_max_rel_err_raw:.2e})"
        return (f"training parity ({self.contrastive}): step-1 loss rel err {losses}; gradients max rel err "
                f"{self.grad_max_rel_err:.2e} ({self.worst_grad}); vs float64: MindSpore "
                f"{self.grad_mindspore_vs_float64:.2e}, PyTorch {self.grad_torch_vs_float64:.2e}; {kinks}; "
                f"{self.steps}-step Adam loss curve max rel err "
                f"{self.curve_max_rel_err:.2e}; weights after {self.steps} steps max rel err "
                f"{self.weights_max_rel_err:.2e} -> {'PASS' if self.ok else 'FAIL'}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def run_train_parity(spec: IPTSpec | None = None, steps: int = 20, contrastive: str = "eq5", weight: float = 0.1,
                     lr: float = 1e-4, clip_norm: float | None = None, batch_size: int = 4,
                     seed: int = 0) -> TrainParityReport:
    """Run both trainers from `parity.seeded.seeded_state(spec, seed)` and compare them.

    The relative gradient error of a parameter is max|g_ms - g_torch - k| / max|g_torch|
    (its own scale), where k is the exact float64 difference that ReLU kinks taken on
    different sides make (zero when both frameworks took the same sides; see
    `parity.relu_kinks`); the curve error is max over steps of |L_ms - L_torch| / |L_torch|.
    Both frameworks' float32 gradients are also compared with a float64 run of the twin
    (with each framework's kink sides): on the full-size model some tensors' float32
    gradients are ill-conditioned, and that floor, not the port, then bounds the agreement.
    """
    from parity.relu_kinks import relative_errors, resolve_kinks, torch_side_flips
    from parity.seeded import seeded_state

    spec = spec or IPTSpec.tiny(n_feats=TRAIN_PARITY_FEATS)
    state = seeded_state(spec, seed)
    options = dict(lr=lr, clip_norm=clip_norm, contrastive=contrastive, weight=weight)
    ms_trainer = MindSporeTrainer(spec, state, **options)
    torch_trainer = TorchTrainer(spec, state, **options)
    data = make_batches(spec, steps, batch_size, seed)

    ms_losses, ms_grads = ms_trainer.gradients(*data[0])
    t_losses, t_grads = torch_trainer.gradients(*data[0])
    loss_err = {name: _rel(a, b) for name, a, b in zip(("total", "l1", "contrastive"), ms_losses, t_losses)
                if not (name == "contrastive" and contrastive == "none")}

    kinks = torch_trainer.relu_kinks(*data[0])
    torch_flips = torch_side_flips(kinks)

    def exact(flips):
        return torch_trainer.float64_gradients(*data[0], flips=flips)

    exact_torch = exact(torch_flips)
    ms_flips, exact_ms = resolve_kinks(ms_grads, exact, kinks, torch_flips, base=exact_torch)
    kink_term = {k: exact_ms[k] - exact_torch[k] for k in t_grads}
    per_param = relative_errors({k: ms_grads[k] - kink_term[k] for k in t_grads}, t_grads)
    worst = max(per_param, key=per_param.get)
    raw = max(relative_errors(ms_grads, t_grads).values())
    ms_floor = max(relative_errors(ms_grads, exact_ms).values())
    torch_floor = max(relative_errors(t_grads, exact_torch).values())
    differ = ms_flips ^ torch_flips

    curve_ms = [ms_trainer.step(*batch) for batch in data]
    curve_t = [torch_trainer.step(*batch) for batch in data]
    curve_err = max(_rel(a, b) for a, b in zip(curve_ms, curve_t))
    ms_state, t_state = ms_trainer.state(), torch_trainer.state()
    weights_err = 0.0
    for key, ref in t_state.items():
        if ref.dtype.kind != "f":
            continue
        scale = float(np.abs(ref).max()) or 1.0
        weights_err = max(weights_err, float(np.abs(ms_state[key] - ref).max()) / scale)
    return TrainParityReport(contrastive, steps, loss_err, per_param[worst], worst, curve_ms, curve_t, curve_err,
                             weights_err, ms_floor, torch_floor, per_param=per_param, grad_max_rel_err_raw=raw,
                             kinks=[k.describe() for k in kinks],
                             kinks_sides_differ=[k.describe() for k in kinks if k.flip in differ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.train_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--contrastive", default="eq5", choices=("none", "eq5", "supcon"))
    parser.add_argument("--weight", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--clip-norm", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tasks", default="sr_x2,denoise_30", help="comma-separated tasks of the tiny model")
    parser.add_argument("--mode", default="graph", choices=("graph", "pynative"))
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)

    from ipt_ms.runtime import configure

    configure("CPU", args.mode)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    spec = IPTSpec.tiny(task_names=tuple(names), n_feats=TRAIN_PARITY_FEATS)
    report = run_train_parity(spec, args.steps, args.contrastive, args.weight, args.lr, args.clip_norm,
                              args.batch_size)
    print(report.summary())
    if args.json:
        from ipt_ms.fileio import atomic_output

        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
