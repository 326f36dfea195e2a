"""One worker of `ipt-ms doctor --msrun`: join the group, all-reduce, one data-parallel step.

Started by `msrun` (two local workers). Each rank feeds different data; after one step
with the gradient mean every rank must hold bit-identical weights. Writes
rank<r>.json into --out for the doctor to read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import mindspore as ms
    from mindspore import ops

    from ipt_ms.doctor.checks import training_spec
    from ipt_ms.inference import build_model
    from ipt_ms.runtime import configure
    from ipt_ms.train.distributed import init_distributed
    from ipt_ms.train.losses import IPTLoss
    from ipt_ms.train.step import TrainStep, build_adam
    from parity.seeded import seeded_state
    from parity.train_parity import make_batches

    device = configure(args.device, "graph")
    dist = init_distributed()
    total = float(ops.AllReduce()(ms.Tensor(np.array([dist.rank + 1.0], np.float32))).asnumpy()[0])
    spec = training_spec()
    net = build_model(spec, seeded_state(spec, 0))
    net.set_train(True)
    params = net.trainable_params()
    start = [p.asnumpy().copy() for p in params]
    step = TrainStep(IPTLoss(net, "none", 0.0), build_adam(params, 1e-3), clip_norm=1.0,
                     distributed=dist.distributed)
    lr, hr, task = make_batches(spec, 1, batch_size=2, seed=100 + dist.rank)[0]  # each rank its own data
    out = step(ms.Tensor(lr), ms.Tensor(hr), int(task)).asnumpy()
    weights = np.concatenate([p.asnumpy().ravel().astype(np.float64) for p in params])
    moved = float(max(np.abs(p.asnumpy() - s).max() for p, s in zip(params, start)))
    record = {"rank": dist.rank, "world_size": dist.world_size, "device": device, "allreduce_sum": total,
              "loss": float(out[0]), "applied": bool(out[3]), "weights_sum": float(weights.sum()),
              "weights_abs_sum": float(np.abs(weights).sum()), "max_weight_change": moved}
    Path(args.out, f"rank{dist.rank}.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
