"""`ipt-ms make-weights`: write seeded IPT weights (official initialisation) for demos and tests."""

from __future__ import annotations

from ipt_ms.cli._common import positive_int, seed_int
from ipt_ms.presets import PRESETS, preset_spec  # noqa: F401 (re-exported)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "make-weights", help="write seeded random IPT weights (any format)",
        description="Initialise an IPT the way the official code does, from a seed, and save it (the file "
                    "records the seed: `ipt-ms info` shows it, restore and eval warn that it restores nothing). "
                    "Presets: pretrain (6 tasks, 118.9M params), a released single-task model, or tiny (the "
                    "model of configs/tiny.yaml: sr_x2 + denoise_30, 16 features, 1+1 layers, 2 heads, 24-px "
                    "patches).")
    p.add_argument("-o", "--output", required=True, help=".pt/.pth/.safetensors/.ckpt file to write")
    p.add_argument("--preset", default="sr_x2", choices=PRESETS)
    p.add_argument("--seed", type=seed_int, default=0, help="seed, 0 to 2**32 - 1 (default 0)")
    p.add_argument("--tasks", default=None, help="comma-separated task names (overrides the preset's)")
    p.add_argument("--n-feats", type=positive_int, default=None)
    p.add_argument("--num-layers", type=positive_int, default=None)
    p.add_argument("--num-heads", type=positive_int, default=None)
    p.add_argument("--patch-size", type=positive_int, default=None)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ipt_ms.convert.weights import describe, save_weights, weights_format
    from ipt_ms.errors import IPTError, sanitize
    from ipt_ms.fileio import check_output_file
    from ipt_ms.provenance import seeded
    from ipt_ms.tasks import parse_task
    from parity.seeded import seeded_state

    weights_format(args.output)  # extension and path checked before the (slow) initialisation
    check_output_file(args.output)
    if Path(args.output).exists() and not args.overwrite:  # before the (slow) initialisation
        raise IPTError(f"output {args.output!r} already exists; pass --overwrite to replace it")
    overrides = {k: v for k, v in (("n_feats", args.n_feats), ("num_layers", args.num_layers),
                                   ("num_heads", args.num_heads), ("patch_size", args.patch_size)) if v is not None}
    if args.tasks:
        names = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
        overrides.update(task_names=names, scales=tuple(parse_task(n).scale for n in names))
    spec = preset_spec(args.preset)
    if "task_names" in overrides and "num_queries" not in overrides:
        overrides["num_queries"] = max(spec.num_queries, len(overrides["task_names"]))
    spec = spec.replace(**overrides) if overrides else spec
    from ipt_ms.memory import check_make_weights
    from ipt_ms.progress import StepProgress

    check_make_weights(spec)

    with StepProgress("make-weights", 2, enable=not args.quiet and spec.num_layers >= 6) as steps:
        steps.start(f"initialising {spec.num_parameters():,} parameters (seed {args.seed})")
        state = seeded_state(spec, args.seed)
        steps.start(f"writing {args.output}")
        save_weights(args.output, state, spec, provenance=seeded(args.seed), overwrite=args.overwrite)
    print(f"wrote {sanitize(args.output)} (seed {args.seed})")
    print(describe(spec))
    return 0
