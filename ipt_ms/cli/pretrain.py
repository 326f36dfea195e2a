"""`ipt-ms pretrain`: multi-task IPT pre-training from a YAML recipe."""

from __future__ import annotations

from ipt_ms.cli._training import add_training_args, run_training


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain", help="multi-task pre-training (L1 + contrastive loss)",
        description="Pre-train IPT on clean images degraded on the fly, one task per batch, with the paper's "
                    "L1 + 0.1 x contrastive loss (Eq. 5). Checkpoints are written atomically; --resume "
                    "continues exactly where a run stopped. Under msrun (scripts/train_distributed.sh) it "
                    "trains data-parallel.")
    add_training_args(p)
    p.set_defaults(func=lambda args: run_training(args, "pretrain"))
