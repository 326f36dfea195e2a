"""Worker for the data-parallel test, started by scripts/train_distributed.sh (TRAIN_ENTRY).

Trains the tiny model on `ArraySource` batches (rank r gets rows r*b..(r+1)*b of each
global batch, so any worker count sees the same images) and saves this rank's initial
and final weights to OUT/rank{r}.npz. Run without msrun it is the single-worker reference.

    dist_worker.py --config CFG --out DIR [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ipt_ms  # noqa: E402,F401  (environment defaults before MindSpore loads)
from ipt_ms.train.config import load_train_config  # noqa: E402
from tests.train.helpers import ArraySource  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    cfg = load_train_config(args.config, args.overrides)

    from ipt_ms.train.loop import Trainer
    from ipt_ms.train.weights import network_arrays

    def source(world: int, rank: int) -> ArraySource:
        tasks = [(t, cfg.model.spec().scales[i]) for i, t in enumerate(cfg.model.tasks)]
        return ArraySource(tasks, batch_size=cfg.data.batch_size // world, steps_per_epoch=4, num_shards=world,
                           shard_id=rank)

    trainer = Trainer(cfg, source_factory=source, quiet=True)
    trainer.setup()
    initial = {f"initial/{k}": v for k, v in network_arrays(trainer.net).items()}
    result = trainer.run()
    final = {f"final/{k}": v for k, v in network_arrays(trainer.net).items()}
    losses = np.array([loss for _, loss in result.losses], np.float64)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{result.rank}_of{result.world_size}.npz", losses=losses, **initial, **final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
