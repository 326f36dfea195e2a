"""`ipt-ms train`: run any training config (its `kind` says pre-training or fine-tuning).

This is what scripts/train_distributed.sh starts on every msrun worker.
"""

from __future__ import annotations

from ipt_ms.cli._training import add_training_args, run_training


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="run a training config (pretrain or finetune, as the config says)",
        description="Train as the config's `kind` says (pretrain or finetune); the same options as "
                    "`ipt-ms pretrain` / `ipt-ms finetune`. Resume a stopped run with --resume.")
    add_training_args(p)
    p.add_argument("--init", default=None, help="starting weights (overrides train.init)")
    p.set_defaults(func=lambda args: run_training(args, None, init=args.init))
