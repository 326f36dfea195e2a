"""Mistakes the layer-by-layer parity must catch, and where it must name them.

A conversion or port can go wrong in four small ways that rounding never explains: one
weight tensor off by 1 % (`scale`), the weight and bias of a LayerNorm swapped
(`layernorm_swap`), a bias that never arrived and kept MindSpore's zero initialisation
(`missing_bias`), and two same-shaped keys crossed in a key map (`key_swap`). Each case
here tampers with the MindSpore side's official-keyed state; `sweep` runs the parity rule
(`parity.compare.judge_mindspore`) on it and reports whether the check failed, and at
which stage: it must be the first stage that reads the tampered tensor (`first_stage`).
`tests/core/test_parity_tamper.py` sweeps every tensor of a tiny model and a few cases of
the full-size one; `python -m parity.tamper WEIGHTS` sweeps a weights file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ipt_ms.spec import IPTSpec

KINDS = ("scale", "layernorm_swap", "missing_bias", "key_swap")


@dataclass(frozen=True)
class Tamper:
    kind: str
    keys: tuple[str, ...]  # official keys changed
    apply: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

    @property
    def description(self) -> str:
        what = {"scale": "scaled by 1.01", "layernorm_swap": "LayerNorm weight and bias swapped",
                "missing_bias": "bias left at zero", "key_swap": "two same-shaped keys swapped"}[self.kind]
        return f"{' <-> '.join(self.keys)}: {what}"


def first_stage(spec: IPTSpec, key: str, task_idx: int) -> str | None:
    """The first stage of task `task_idx` that reads the official key `key` (None: unused there)."""
    if key.startswith("sub_mean."):
        return "mean_shift"
    if key.startswith("add_mean."):
        return "output"
    match = re.match(r"(head|tail)\.(\d+)\.(\d+)\.(?:(\d+)\.)?", key)
    if match:
        part, task, index, sub = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
        if task != task_idx:
            return None
        if part == "head":
            return ("head.conv", "head.resblock1", "head.resblock2")[index]
        return "tail.conv" if index == 1 else f"tail.upsample.{int(sub) // 2}"
    match = re.match(r"body\.(encoder|decoder)\.layers\.(\d+)\.", key)
    if match:
        return f"body.{match.group(1)}.{match.group(2)}"
    if key.startswith("body.linear_encoding."):
        return "body.linear_encoding"
    if key.startswith("body.mlp_head."):
        return "body.mlp_head"
    if key.startswith("body.position_encoding."):
        return "body.encoder.0"
    if key.startswith("body.query_embed."):
        return "body.decoder.0"
    raise ValueError(f"no stage reads {key!r}")


def _replace(state: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    out = dict(state)
    out.update(changes)
    return out


def tamper_cases(spec: IPTSpec, state: dict[str, np.ndarray], kinds: tuple[str, ...] = KINDS) -> Iterator[Tamper]:
    """Every case of the given kinds for this state (official keys)."""
    keys = [k for k in state if not k.endswith("position_ids")]
    if "scale" in kinds:
        for key in keys:
            if np.any(state[key] != 0):  # a zero tensor scaled is the same tensor
                yield Tamper("scale", (key,), lambda s, k=key: _replace(s, **{k: s[k] * np.float32(1.01)}))
    if "layernorm_swap" in kinds:
        for key in keys:
            if re.search(r"\.norm\d\.weight$", key) and not np.array_equal(state[key], state[key[:-6] + "bias"]):
                bias = key[: -len("weight")] + "bias"
                yield Tamper("layernorm_swap", (key, bias),
                             lambda s, w=key, b=bias: _replace(s, **{w: s[b], b: s[w]}))
    if "missing_bias" in kinds:
        for key in keys:
            if key.endswith(".bias") and not re.search(r"\.norm\d\.bias$", key) and np.any(state[key] != 0):
                yield Tamper("missing_bias", (key,), lambda s, k=key: _replace(s, **{k: np.zeros_like(s[k])}))
    if "key_swap" in kinds:
        seen: dict[tuple, str] = {}
        for key in keys:  # each tensor with the previous key of the same shape and leaf name
            leaf = (state[key].shape, key.rsplit(".", 1)[-1])
            other = seen.get(leaf)
            seen[leaf] = key
            if other is not None and not np.array_equal(state[key], state[other]):
                yield Tamper("key_swap", (other, key),
                             lambda s, a=other, b=key: _replace(s, **{a: s[b], b: s[a]}))


@dataclass
class SweepRow:
    tamper: str
    task: str
    expected_stage: str
    failed_at: str | None  # first failing stage, None when the check passed (a miss)
    ratio: float  # own error / limit at the expected stage (> 1 fails)

    @property
    def caught(self) -> bool:
        return self.failed_at == self.expected_stage


def sweep(spec: IPTSpec, state: dict[str, np.ndarray], cases: list[Tamper], *, image: str | None = None,
          seed: int = 0, draws: int = 3, tasks: list[int] | None = None, net=None, references: dict | None = None,
          progress: Callable[[str], None] | None = None) -> list[SweepRow]:
    """Judge each tampered state (MindSpore side) against the untampered twin, on every task
    the case touches (of `tasks`, default all). `net`/`references` (task index ->
    TorchReference) can be passed in to reuse."""
    from ipt_ms.inference import build_model, load_state_into
    from parity.compare import judge_mindspore, make_input, torch_reference
    from parity.torch_runner import build_torch_model

    x, _ = make_input(spec, image, seed)
    net = net if net is not None else build_model(spec, state)
    references = {} if references is None else references
    model = None
    rows = []
    for number, case in enumerate(cases):
        load_state_into(net, case.apply(state), spec)
        try:
            for task_idx in range(spec.num_tasks) if tasks is None else tasks:
                expected = [first_stage(spec, key, task_idx) for key in case.keys]
                expected = [e for e in expected if e is not None]
                if not expected:
                    continue
                if task_idx not in references:
                    model = model or build_torch_model(spec, state)
                    references[task_idx] = torch_reference(model, x, task_idx, draws=draws, seed=seed)
                names = spec.stage_names(task_idx)
                stage = min(expected, key=names.index)
                diffs = judge_mindspore(net, references[task_idx])
                bad = [d.name for d in diffs if not d.ok]
                hit = next(d for d in diffs if d.name == stage)
                rows.append(SweepRow(case.description, spec.task_names[task_idx], stage, bad[0] if bad else None,
                                     (hit.local_ratio or 0.0) / hit.floor_factor))
        finally:
            load_state_into(net, state, spec)
        if progress:
            progress(f"[{number + 1}/{len(cases)}] {case.description}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m parity.tamper WEIGHTS [--kinds ...] [--input IMG] [--every N]`: sweep a file."""
    import argparse
    import sys

    from ipt_ms.convert.weights import load_weights
    from ipt_ms.runtime import configure

    parser = argparse.ArgumentParser(prog="python -m parity.tamper", description=__doc__.split("\n\n")[0])
    parser.add_argument("weights")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--input", default=None, help="image whose centre patch is used (default: seeded noise)")
    parser.add_argument("--every", type=int, default=1, help="only every N-th case of each kind (default 1: all)")
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    parser.add_argument("--trained-layernorms", action="store_true",
                        help="move the LayerNorms off the official init's 1 / 0 first (seeded weights; "
                             "parity.seeded.with_trained_layernorms)")
    args = parser.parse_args(argv)
    configure("CPU", args.mode)
    spec, state = load_weights(args.weights)
    if args.trained_layernorms:
        from parity.seeded import with_trained_layernorms

        state = with_trained_layernorms(state)
    kinds = tuple(k.strip() for k in args.kinds.split(","))
    cases = [c for kind in kinds for c in list(tamper_cases(spec, state, (kind,)))[:: max(1, args.every)]]
    start = time.perf_counter()
    rows = sweep(spec, state, cases, image=args.input, progress=lambda line: print(line, file=sys.stderr))
    missed = [r for r in rows if not r.caught]
    for r in rows:
        print(f"{'caught' if r.caught else 'MISSED'}  {r.task:<12} {r.expected_stage:<22} "
              f"{'passed' if r.failed_at is None else r.failed_at:<22} {r.ratio:10.1f}x  {r.tamper}")
    ratios = [r.ratio for r in rows]
    print(f"{len(rows) - len(missed)}/{len(rows)} caught at the expected stage in {time.perf_counter() - start:.0f} s; "
          f"own error or offset / limit at that stage: min {min(ratios):.1f}x, median {np.median(ratios):.1f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
