"""Worker for the data-parallel tests, started by scripts/train_distributed.sh (TRAIN_ENTRY).

Trains the tiny model on `ArraySource` batches (rank r gets rows r*b..(r+1)*b of each
global batch, so any worker count sees the same images) and saves to
OUT/rank{r}_of{w}{TAG}.npz: copies of this rank's weights at the start, after step
--keep-step (4) and at the end, the losses, and a digest of all weights after every
step, and the logged grad_norm of every step. Run without msrun it is the single-worker
reference. Like `ipt-ms train`, it stops on SIGINT/SIGTERM (exit 130/143, one line) and
rank 0 prints its step lines and the summary.

    dist_worker.py --config CFG --out DIR [--tag NAME] [--resume] [--set key=value ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ipt_ms import signals  # noqa: E402

signals.install()  # first, as the CLI does: before NumPy and MindSpore start threads

import argparse  # noqa: E402
import hashlib  # noqa: E402

import numpy as np  # noqa: E402

import ipt_ms  # noqa: E402,F401  (environment defaults before MindSpore loads)
from ipt_ms.cli._common import setup_logging  # noqa: E402
from ipt_ms.train.callbacks import Callback  # noqa: E402
from ipt_ms.train.config import load_train_config  # noqa: E402
from tests.train.helpers import ArraySource  # noqa: E402


class StepDigests(Callback):
    """sha256 of every parameter's bytes after each step (all ranks), and copies of the
    weights after step `keep` (`network_arrays` copies)."""

    def __init__(self, keep: int):
        self.steps, self.digests, self.grad_norms, self.keep, self.kept = [], [], [], keep, {}

    def on_step_end(self, trainer, record) -> None:
        from ipt_ms.train.weights import network_arrays

        h = hashlib.sha256()
        for p in trainer.net.get_parameters():
            h.update(p.name.encode())
            h.update(p.asnumpy().tobytes())
        self.steps.append(record["step"])
        self.grad_norms.append(record["grad_norm"])  # of the reduced (mean) gradient, before clipping
        self.digests.append(h.hexdigest())
        if record["step"] == self.keep:
            self.kept = {f"step{self.keep}/{k}": v for k, v in network_arrays(trainer.net).items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tag", default="")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--keep-step", type=int, default=4, help="also save the weights after this step")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    cfg = load_train_config(args.config, args.overrides)
    setup_logging()  # as `ipt-ms train`: "resumed from ..." on stderr (the worker log the launcher shows)

    from ipt_ms.train.loop import Trainer
    from ipt_ms.train.weights import network_arrays

    def source(world: int, rank: int) -> ArraySource:
        tasks = [(t, cfg.model.spec().scales[i]) for i, t in enumerate(cfg.model.tasks)]
        return ArraySource(tasks, batch_size=cfg.data.batch_size // world, steps_per_epoch=4, num_shards=world,
                           shard_id=rank)

    digests = StepDigests(args.keep_step)
    trainer = Trainer(cfg, resume=args.resume or None, source_factory=source, callbacks=[digests])
    trainer.setup()
    initial = {f"initial/{k}": v for k, v in network_arrays(trainer.net).items()}  # copies
    result = trainer.run()
    final = {f"final/{k}": v for k, v in network_arrays(trainer.net).items()}
    losses = np.array([loss for _, loss in result.losses], np.float64)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{result.rank}_of{result.world_size}{args.tag}.npz", losses=losses,
             steps=np.array(digests.steps), digests=np.array(digests.digests),
             grad_norms=np.array(digests.grad_norms, np.float64), **initial, **digests.kept, **final)
    if result.interrupted is not None:
        if result.rank == 0:
            print(f"interrupted at step {result.global_step}: checkpoint {result.checkpoint}; continue with --resume",
                  file=sys.stderr, flush=True)
        return signals.exit_code(result.interrupted)
    if result.rank == 0:
        print("\n".join(result.summary_lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
