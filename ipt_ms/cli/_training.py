"""Options and runner shared by the training commands (`pretrain`, `finetune`, `train`)."""

from __future__ import annotations

import argparse
import sys

from ipt_ms.cli._common import add_compile_cache_arg, add_quiet_arg, positive_int, setup_logging


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by `pretrain`, `finetune` and `train`."""
    parser.add_argument("--config", required=True, help="YAML recipe (see configs/ and docs/training.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=1e-4 (repeatable; value parsed as YAML)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                        help="continue from the newest checkpoint of output.dir, or from CKPT "
                             "(a checkpoint file or run directory)")
    parser.add_argument("-o", "--output", default=None, help="run directory (overrides output.dir)")
    parser.add_argument("--data", default=None, help="training data folder (overrides data.root)")
    parser.add_argument("--device", default=None, help="CPU, GPU, Ascend or auto (overrides train.device)")
    parser.add_argument("--mode", default=None, choices=("graph", "pynative"), help="overrides train.mode")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps in total")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on although images were added to or removed from the training data")
    add_compile_cache_arg(parser)
    add_quiet_arg(parser)


def run_training(args: argparse.Namespace, kind: str | None, init: str | None = None) -> int:
    """Load the config with the command-line overrides and train; prints where results went.

    `kind` forces pretrain/finetune; None trains whatever the config's `kind` says."""
    from ipt_ms import signals
    from ipt_ms.errors import sanitize, sanitize_lines

    signals.install()  # before MindSpore starts its threads: SIGINT/SIGTERM stop after the current step
    from ipt_ms.train.loop import train

    setup_logging(args.quiet)
    cfg = training_config(args, kind, init)
    result = train(cfg, resume=args.resume, quiet=args.quiet)
    if result.interrupted is not None:
        if result.rank == 0:  # one line, on stderr like every other stop
            print(sanitize(f"interrupted at step {result.global_step}: checkpoint {result.checkpoint}; continue "
                           "with --resume"), file=sys.stderr)
        return signals.exit_code(result.interrupted)
    if result.rank == 0:
        print(sanitize_lines("\n".join(result.summary_lines())))
    return 0


def training_config(args: argparse.Namespace, kind: str | None, init: str | None = None):
    """The validated `TrainConfig` of a training command: the YAML, its --set overrides and
    the options that override keys (also used by the distributed launcher's pre-flight check)."""
    from ipt_ms.config import load_yaml
    from ipt_ms.errors import IPTError
    from ipt_ms.train.config import load_train_config

    written = load_yaml(args.config).get("kind")
    if kind and written in ("pretrain", "finetune") and written != kind:
        raise IPTError(f"{args.config} is a {written} config: use `ipt-ms {written}` or `ipt-ms train`")
    overrides = [f"kind={kind}"] if kind and written is None else []
    for key, value in (("train.device", args.device), ("train.mode", args.mode), ("train.max_steps", args.max_steps)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.compile_cache is not None:
        overrides.append(f"train.compile_cache={args.compile_cache!r}")
    if args.allow_data_change:
        overrides.append("train.allow_data_change=true")
    cfg = load_train_config(args.config, overrides + list(args.overrides))
    # paths are set as given (not parsed as YAML, where "a: b" would become a mapping)
    if args.output:
        cfg.output.dir = args.output
    if init:
        cfg.train.init = init
    if args.data:
        cfg.data.root = args.data
    return cfg
