"""`ipt-ms finetune`: fine-tune one task from pre-trained (MindSpore or PyTorch) weights."""

from __future__ import annotations

from ipt_ms.cli._training import add_training_args, run_training


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune one task from pre-trained weights",
        description="Fine-tune the task named in the config (model.tasks) from a pre-trained checkpoint "
                    "(.ckpt, or PyTorch .pt/.pth/.safetensors). Only that task's head, tail and query are "
                    "kept; the exported model is a single-task IPT.")
    add_training_args(p)
    p.add_argument("--init", default=None, help="pre-trained weights (overrides train.init)")
    p.set_defaults(func=lambda args: run_training(args, "finetune", init=args.init))
