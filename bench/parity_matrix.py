"""The parity rule across kernels: `ipt-ms parity --task all` in every configuration asked for.

Each configuration is one `ipt-ms parity` process over the full-size 6-task model (seeded
weights, as `make demo`), with the oneDNN ISA capped or not, convolutions as im2col + matmul
or native, Graph or PyNative mode, on the demo's photo or on seeded noise. It prints one
Markdown table row per configuration (verdict, stages, the closest stage's ratio to
PyTorch float32's rounding, the output's end-to-end numbers) for docs/parity.md:

    .venv/bin/python bench/parity_matrix.py --out build/parity-matrix [--quick]

`--quick`: only the default configuration and the most different one (capped ISA, native
convolutions, PyNative, noise). `--configs isa-conv-mode-source,...` picks others by name
(e.g. `SSE41-native-graph-noise`). A configuration takes about 3 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
IPT_MS = str(Path(sys.executable).parent / "ipt-ms")  # the command of this environment


def configurations(isas: list[str], quick: bool) -> list[dict]:
    rows = [dict(isa=isa, conv=conv, mode=mode, source=source)
            for isa, conv, mode, source in itertools.product(isas, ("im2col", "native"), ("graph", "pynative"),
                                                             ("photo", "noise"))]
    if quick:
        rows = [rows[0], rows[-1]]
    return rows


def run_one(config: dict, weights: Path, photo: Path, out: Path) -> dict:
    env = dict(os.environ, IPT_MS_CONV_AS_MATMUL="1" if config["conv"] == "im2col" else "0")
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if config["isa"] != "default":
        env["ONEDNN_MAX_CPU_ISA"] = config["isa"]
    name = "-".join(config.values())
    report_dir = out / name
    cmd = [IPT_MS, "parity", str(weights), "--task", "all", "--mode", config["mode"],
           "--report", str(report_dir), "-q"]
    if config["source"] == "photo":
        cmd += ["--input", str(photo)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    reports = [json.loads(p.read_text()) for p in sorted(report_dir.glob("*/report.json"))]
    stages = [s for r in reports for s in r["stages"]]
    outputs = [r["stages"][-1] for r in reports]
    machine = next((line for line in proc.stdout.splitlines() if line.startswith("machine:")), "")
    worst = max(stages, key=lambda s: s.get("local_ratio") or 0) if stages else None
    return dict(config, rc=proc.returncode, tasks=len(reports), seconds=seconds, machine=machine,
                stages=len(stages), failing=sum(1 for s in stages if not s["ok"]),
                worst_stage=worst["name"] if worst else "-", worst_ratio=worst.get("local_ratio") if worst else None,
                output_rel=max((o["max_rel_err"] for o in outputs), default=None),
                output_vs_floor=max(((o["ms_vs_fp64"] or 0) / o["fp32_floor"] for o in outputs if o["fp32_floor"]),
                                    default=None))


def row(result: dict) -> str:
    def f(value, spec=".2f"):
        return "-" if value is None else format(value, spec)

    verdict = "PASS" if result["rc"] == 0 else ("FAIL" if result["rc"] == 1 else f"error rc {result['rc']}")
    return (f"| {result['isa']} | {result['conv']} | {result['mode']} | {result['source']} | {verdict} | "
            f"{result['stages'] - result['failing']}/{result['stages']} | {result['worst_stage']} | "
            f"{f(result['worst_ratio'])}x | {f(result['output_rel'], '.2e')} | {f(result['output_vs_floor'])}x | "
            f"{result['seconds']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/parity-matrix")
    parser.add_argument("--isas", default="default,AVX2,SSE41",
                        help="comma-separated ONEDNN_MAX_CPU_ISA values; 'default' = not set")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", default=None, help="comma-separated isa-conv-mode-source names")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "ipt_seeded.pt"
    if not weights.exists():
        subprocess.run([IPT_MS, "make-weights", "--preset", "pretrain", "--seed", "0",
                        "-o", str(weights), "-q"], check=True)
    from ipt_ms import machine
    from ipt_ms.eval.photos import write_sample_photos

    photo = write_sample_photos(out, ["astronaut"], 64, 64)[0]
    print(f"Machine: {machine.one_line()}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| ISA cap | convolutions | mode | input | verdict | stages passing | closest stage | its ratio | "
          "output max rel err | output vs float64 / PyTorch's | s |")
    print("|---|---|---|---|---|---:|---|---:|---:|---:|---:|")
    status = 0
    chosen = configurations([s.strip() for s in args.isas.split(",")], args.quick)
    if args.configs:
        names = [c.strip() for c in args.configs.split(",")]
        chosen = [c for c in configurations(sorted({n.split("-")[0] for n in names}), False)
                  if "-".join(c.values()) in names]
        if len(chosen) != len(names):
            parser.error(f"unknown configuration in {args.configs!r}")
    for config in chosen:
        result = run_one(config, weights, photo, out)
        print(row(result), flush=True)
        status |= result["rc"] != 0
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
