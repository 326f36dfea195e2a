"""`ipt-ms info WEIGHTS`: print the key layout and architecture a weights file holds."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="show the layout, architecture and provenance of a weights file",
        description="Read a weights file (official PyTorch, ipt-ms, MindSpore model-zoo or Hub layout; weights "
                    "or a training checkpoint), check every key and value, and print its layout, IPT "
                    "architecture and provenance (seeded random, a training run, or a conversion; official and "
                    "zoo files record none).")
    p.add_argument("weights")
    p.add_argument("--json", action="store_true",
                   help="print the architecture as JSON, with the provenance record under \"provenance\" (null "
                        "when not recorded); nothing else")
    add_architecture_overrides(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ipt_ms.convert.weights import describe, official_state, read_weight_file, resolve_spec
    from ipt_ms.errors import sanitize, sanitize_lines
    from ipt_ms.provenance import describe as describe_provenance

    overrides = architecture_overrides(args)
    weights = read_weight_file(args.weights, overrides.pop("weights_variant", None))
    spec = resolve_spec(weights, **overrides)
    official_state(weights, spec)  # every key, shape and value checked, as every command does
    if args.json:
        print(json.dumps({**spec.to_dict(), "provenance": weights.provenance}, indent=2, sort_keys=True))
        return 0
    print(sanitize_lines(weights.describe_layout()))
    print(sanitize_lines(describe(spec)))
    print(sanitize(f"provenance: {describe_provenance(weights.provenance)}"))
    unnamed = [n for n in spec.task_names if n.startswith("restore_")]
    if unnamed:
        print(f"note: {', '.join(unnamed)}: the file does not record what these scale-1 heads restore; name them "
              "with --tasks (e.g. --tasks denoise_30), or --task denoise_30 when running a single-task file")
    return 0
