"""IPT training losses in MindSpore: L1 reconstruction plus a contrastive term on body features.

Two contrastive variants, selected by name (`CONTRASTIVE_LOSSES`):

* ``"eq5"`` -- the paper's Eq. 5. For decoder features f_i^j (patch i of image j) and
  cosine similarity d, every ordered patch pair (i1, i2) of an image j contributes
  ``-log(exp d(f_i1^j, f_i2^j) / sum_{k != j} exp d(f_i1^j, f_i2^k))``; the sum over
  i1, i2, j is divided by B*N^2. No temperature; the denominator holds only the *other*
  images at patch position i2, and i1 == i2 is included.
* ``"supcon"`` -- what the official MindSpore code trains with (SupCon, temperature
  0.07): every patch is an anchor, the other patches of its image are positives, the
  denominator runs over all other B*N - 1 patches, positives are averaged per anchor.

The contrastive term needs at least 2 images per batch (per device): Eq. 5 has an empty
denominator otherwise. Both are computed in float32 whatever the network's precision.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import Tensor, nn, ops

#: Accepted values of the `loss.contrastive` option.
CONTRASTIVE_LOSSES = ("none", "eq5", "supcon")
_NORM_EPS = 1e-12  # as torch.nn.functional.normalize


def l1_loss(out: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over every element (`nn.L1Loss()`, the paper's L_sup)."""
    return ops.mean(ops.abs(out - target))


def _unit_rows(features: Tensor) -> Tensor:
    """Scale each feature vector (last axis) to unit length, so a dot product is a cosine."""
    norm = ops.sqrt(ops.sum(features * features, dim=-1, keepdim=True))
    return features / ops.maximum(norm, _NORM_EPS)


def contrastive_eq5(features: Tensor) -> Tensor:
    """Eq. 5 of the IPT paper for (B, N, E) patch features; see the module docstring."""
    B, N, E = features.shape
    f = _unit_rows(features.astype(ms.float32))
    flat = f.reshape((B * N, E))
    # cos[j, i1, k, i2] = d(f_i1^j, f_i2^k); cosines lie in [-1, 1], so exp cannot overflow
    cos = ops.matmul(flat, flat.T).reshape((B, N, B, N))
    other_image = (1.0 - ops.eye(B, B, ms.float32)).reshape((B, 1, B, 1))
    denominator = ops.sum(ops.exp(cos) * other_image, dim=2)  # (B, N, N): [j, i1, i2]
    positive = ops.BatchMatMul(transpose_b=True)(f, f)  # (B, N, N): d(f_i1^j, f_i2^j)
    return ops.sum(ops.log(denominator) - positive) / (B * N * N)


def supcon(features: Tensor, temperature: float = 0.07, base_temperature: float = 0.07) -> Tensor:
    """The official MindSpore `SupConLoss` (all patches as anchors, same image = positive)."""
    B, N, E = features.shape
    M = B * N
    flat = _unit_rows(features.astype(ms.float32)).reshape((M, E))  # row b*N + n
    logits = ops.matmul(flat, flat.T) / temperature
    # subtracting the row maximum changes neither the value nor the gradient of log-softmax
    logits = logits - ops.stop_gradient(ops.max(logits, axis=1, keepdims=True)[0])
    not_self = 1.0 - ops.eye(M, M, ms.float32)
    same_image = ops.broadcast_to(ops.eye(B, B, ms.float32).reshape((B, 1, B, 1)), (B, N, B, N)).reshape((M, M))
    positives = same_image * not_self
    log_prob = logits - ops.log(ops.sum(ops.exp(logits) * not_self, dim=1, keepdim=True) + 1e-8)
    mean_log_prob_pos = ops.sum(positives * log_prob, dim=1) / ops.sum(positives, dim=1)
    return -(temperature / base_temperature) * ops.mean(mean_log_prob_pos)


class IPTLoss(nn.Cell):
    """IPT forward pass plus its training loss: ``L1 + weight * contrastive``.

    The tail always consumes body output + head output (the network does that in every
    mode); the official MindSpore code skips the body when its contrastive loss is on,
    which leaves the transformer trained by the contrastive term alone.

    Args:
        net: an `ipt_ms.models.IPT`.
        contrastive: "none", "eq5" or "supcon".
        weight: lambda of Eq. 5 (0.1 in the paper).
        temperature, base_temperature: SupCon only.

    Inputs: lr (B, C, P, P), hr (B, C, P*s, P*s), task_idx (Python int, a compile-time
    constant in Graph mode). Returns (total, l1, contrastive) float32 scalars.
    """

    def __init__(self, net: nn.Cell, contrastive: str = "eq5", weight: float = 0.1,
                 temperature: float = 0.07, base_temperature: float = 0.07):
        super().__init__(auto_prefix=False)  # keep the network's parameter names
        if contrastive not in CONTRASTIVE_LOSSES:
            raise ValueError(f"unknown contrastive loss {contrastive!r}; choose one of {CONTRASTIVE_LOSSES}")
        self.net = net
        self.use_contrastive = contrastive != "none" and weight != 0.0
        self.use_supcon = contrastive == "supcon"
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)

    def construct(self, lr, hr, task_idx: int = 0):
        if self.use_contrastive:
            out, features = self.net(lr, task_idx, False, True)
            l1 = l1_loss(out.astype(ms.float32), hr)
            if self.use_supcon:
                con = supcon(features, self.temperature, self.base_temperature)
            else:
                con = contrastive_eq5(features)
            return l1 + self.weight * con, l1, con
        out = self.net(lr, task_idx)
        l1 = l1_loss(out.astype(ms.float32), hr)
        return l1, l1, ops.zeros((), ms.float32)
