"""`ipt-ms info WEIGHTS`: print the architecture a weights file holds."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show the architecture of a weights file",
                              description="Read a weights file, check it, and print its IPT architecture.")
    p.add_argument("weights")
    p.add_argument("--json", action="store_true", help="print the architecture as JSON")
    add_architecture_overrides(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ipt_ms.convert.weights import describe, load_weights, spec_json_pretty

    spec, _ = load_weights(args.weights, **architecture_overrides(args))
    print(spec_json_pretty(spec) if args.json else describe(spec))
    return 0
