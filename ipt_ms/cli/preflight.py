"""The distributed launcher's check before msrun starts (scripts/train_distributed.sh).

It parses `ipt-ms train`'s own arguments, so it lives with the CLI; the launcher runs it as
``python -m ipt_ms.cli.preflight``.

A bad `--set` key, a missing data folder or a run directory that already holds checkpoints
would otherwise surface only after msrun has started the scheduler and every worker (and,
on a cluster, after every node has joined). This parses the worker's arguments as
`ipt-ms train` does, validates the config, and prints the run directory (output.dir after
-o and --set) so the launcher can keep its logs there. One line and exit 2 on bad input.

    python -m ipt_ms.cli.preflight [--custom-entry] [--node-rank R] -- ipt-ms-train-args...

``--custom-entry``: the workers run another script (TRAIN_ENTRY) with arguments of its
own: unknown options are allowed and the data folder is not required. ``--node-rank``:
only node 0 checks the run's checkpoints against --resume (another node may start after
node 0 wrote its first checkpoint to the shared run directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ipt_ms.cli._common import OneLineParser
from ipt_ms.errors import IPTError

PROG = "train_distributed.sh"


def check(argv: list[str], custom_entry: bool = False, node_rank: int = 0) -> Path:
    """The run directory of the training `argv` describes; IPTError/ConfigError when it cannot run."""
    from ipt_ms.cli._training import add_training_args, training_config
    from ipt_ms.fileio import ensure_writable_dir
    from ipt_ms.train.checkpoint import latest_checkpoint
    from ipt_ms.train.result import CHECKPOINT_DIR

    # another entry's own options are not abbreviations of ours (its --out is not --output)
    parser = OneLineParser(prog=PROG, add_help=False, allow_abbrev=not custom_entry)
    add_training_args(parser)
    parser.add_argument("--init", default=None)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not custom_entry:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    cfg = training_config(args, None, init=args.init)
    if not custom_entry:
        root = cfg.data.root
        if not root:
            raise IPTError("data.root: set the training data folder (in the config or with --data PATH)")
        if not Path(root).is_dir():
            raise IPTError(f"data.root {str(root)!r} is not a folder")
        if cfg.train.init and not Path(cfg.train.init).is_file():
            raise IPTError(f"train.init {str(cfg.train.init)!r} is not a file")
    run_dir = Path(cfg.output.dir)
    checkpoints = run_dir / CHECKPOINT_DIR
    ensure_writable_dir(run_dir, "output.dir")
    if node_rank != 0:
        return run_dir
    if args.resume is None and latest_checkpoint(checkpoints) is not None:
        raise IPTError(f"{str(run_dir)!r} already holds checkpoints of a run; pass --resume to continue it, "
                       "or choose another output.dir")
    if args.resume == "latest" and latest_checkpoint(checkpoints) is None:
        raise IPTError(f"nothing to resume: no checkpoint in {str(checkpoints)!r}")
    if args.resume not in (None, "latest") and not Path(args.resume).exists():
        raise IPTError(f"--resume {args.resume!r}: no such checkpoint or run directory")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ipt_ms.config import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    own = argparse.ArgumentParser(prog="preflight")
    own.add_argument("--custom-entry", action="store_true")
    own.add_argument("--node-rank", type=int, default=0)
    options = own.parse_args(argv[:split])
    try:
        run_dir = check(argv[split + 1:], options.custom_entry, options.node_rank)
    except (IPTError, ConfigError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(run_dir.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
