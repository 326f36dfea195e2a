"""One process of the compile-cache tests: run a tiny model's tasks (or training steps) in a
given order with the cache where the environment says, save the outputs, print the stats.

    python tests/core/compile_cache_worker.py OUT.npz infer sr_x2,denoise_30 [batch]
    python tests/core/compile_cache_worker.py OUT.npz train sr_x2,denoise_30
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ipt_ms  # noqa: E402,F401  (environment defaults before MindSpore loads)

TASKS = ("sr_x2", "denoise_30", "derain")


def main() -> int:
    import mindspore as ms
    import numpy as np

    from ipt_ms import compile_cache
    from ipt_ms.inference import build_model
    from ipt_ms.runtime import configure
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    out_path, what, order = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    configure("CPU", "graph")
    spec = IPTSpec.tiny(scales=(2, 1, 1), task_names=TASKS, num_queries=3)
    net = build_model(spec, seeded_state(spec, 0))
    rng = np.random.default_rng(0)
    outputs = {}
    if what == "infer":
        x = rng.uniform(0, 255, (batch, 3, spec.patch_size, spec.patch_size)).astype(np.float32)
        for i, task in enumerate(order):
            outputs[f"{i}_{task}"] = net(ms.Tensor(x), spec.task_index(task)).asnumpy()
    else:
        from parity.train_parity import MindSporeTrainer, make_batches

        trainer = MindSporeTrainer(spec, seeded_state(spec, 0), lr=1e-3, clip_norm=1.0, contrastive="eq5",
                                   weight=0.1)
        batches = make_batches(spec, 3, batch_size=2, seed=1)
        for i, task in enumerate(order):
            lr, hr, _ = batches[spec.task_index(task)]
            outputs[f"{i}_{task}"] = np.asarray(trainer.step(lr, hr, spec.task_index(task)), np.float64)
        outputs["weights"] = np.concatenate([p.asnumpy().ravel() for p in trainer.net.trainable_params()])
    np.savez(out_path, **outputs)
    print(json.dumps({"stats": compile_cache.stats(), "dir": str(compile_cache.cache_dir())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
