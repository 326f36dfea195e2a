"""The inference benchmark in its CI form (tiny model, 1 iteration: no timing is asserted) and
the FLOP count it reports, checked against PyTorch's own counter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.flops import ipt_flops, ipt_macs
from bench.loadmeter import OTHERS_LIMIT, REFUSED_EXIT, verdict
from bench.run import FRAMEWORKS, ROOT, SECTION, section_title, update_markdown
from ipt_ms.spec import IPTSpec


def test_smoke_run_writes_only_its_section(tmp_path):
    """It replaces this CPU kind's section and keeps the other sections, another CPU's included."""
    out = tmp_path / "BENCHMARKS.md"
    title = section_title()  # "## Inference: <CPU model>, oneDNN <ISA>"
    out.write_text(f"# Benchmarks\n\n## Data pipeline\n\nKEEP-1\n\n{title}\n\nold numbers\n\n"
                   "## Inference: Other CPU, oneDNN AVX512_CORE\n\nKEEP-3\n\n## Training\n\nKEEP-2\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out),
                           "--json", str(tmp_path / "r.json"), "--allow-loaded"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    assert text.count(title + "\n") == 1 and "old numbers" not in text and title.startswith(SECTION + ": ")
    assert text.index("## Data pipeline") < text.index(title) < text.index("## Training")
    assert "KEEP-1" in text and "KEEP-2" in text and "KEEP-3" in text and "Smoke run" in text
    for label in (v[2] for v in FRAMEWORKS.values()):
        assert f"| {label} | 2 |" in text  # one row per framework at the smoke batch size
    results = json.loads((tmp_path / "r.json").read_text())
    assert not [r["error"] for r in results if r["error"]]
    with_image = {r["job"]["framework"] for r in results if r["image_s"]}
    assert with_image == {"mindspore-graph", "torch", "onnxruntime"}
    assert all(r["tiles"] > 0 for r in results if r["image_s"])
    assert all(r["peak_rss_mib"] > 0 and r["first_s"] > 0 and len(r["warm_s"]) == 1 for r in results)
    assert "| framework | tiles | image (s) |" in text
    graph = [r for r in results if r["job"]["framework"] == "mindspore-graph"]
    assert [r["job"]["cache_state"] for r in graph] == ["cold", "warm"]  # same compile cache, two processes
    for r in results:  # every MindSpore row says which levers it ran with; they do not apply to the others
        assert bool(r["levers"]) == r["job"]["framework"].startswith("mindspore"), r
    assert "- Levers (MindSpore, `ipt_ms.levers`): " in text and " | levers | threads |" in text


def test_benchmarks_refuse_to_write_figures_from_a_loaded_machine(tmp_path):
    """A CPU burner next to the benchmark: no figures written without --allow-loaded, and
    with it the section says LOADED. Both benchmark scripts."""
    out = tmp_path / "BENCHMARKS.md"
    original = b"# Benchmarks\n\n## Inference\n\nold numbers\n"
    out.write_bytes(original)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        commands = {
            "run": [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--frameworks", "torch",
                    "--image-frameworks", "", "--out", str(out)],
            "train": [sys.executable, str(ROOT / "bench" / "train_step.py"), "--preset", "tiny", "--steps", "1",
                      "--warmup", "1", "--frameworks", "torch", "--out", str(out)],
        }
        for name, cmd in commands.items():
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
            assert proc.returncode == REFUSED_EXIT, (name, proc.stdout[-1000:], proc.stderr[-2000:])
            assert "refusing" in proc.stderr and "cores busy" in proc.stderr
            assert out.read_bytes() == original
        for name, cmd in commands.items():
            proc = subprocess.run(cmd + ["--allow-loaded"], capture_output=True, text=True, timeout=600, cwd=ROOT)
            assert proc.returncode == 0, (name, proc.stderr[-2000:])
        text = out.read_text()
        assert text.count("**LOADED: measured while other processes kept") == 2, text
    finally:
        burner.kill()
        burner.wait()


def test_load_verdict():
    assert verdict([0.0, 0.01]).quiet
    assert not verdict([0.0, OTHERS_LIMIT * (os.cpu_count() or 1) + 0.01]).quiet
    assert not verdict([float("nan")]).quiet and not verdict([]).quiet


def test_update_markdown_appends_when_missing(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# Benchmarks\n\n## Data pipeline\n\nx\n")
    update_markdown(path, SECTION + "\n\nnew\n")
    assert path.read_text() == "# Benchmarks\n\n## Data pipeline\n\nx\n\n## Inference\n\nnew\n"


@pytest.mark.parametrize("spec,task", [
    (IPTSpec.tiny(scales=(2, 3, 4, 1)), t) for t in range(4)] + [
    (IPTSpec.tiny(n_feats=16, num_layers=2, num_heads=4, patch_size=12, patch_dim=2, scales=(8,)), 0),
    (IPTSpec.tiny(no_mlp=True), 0),
])
def test_flop_count_matches_torch_flop_counter(spec, task):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from parity.torch_runner import build_torch_model

    model = build_torch_model(spec)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, spec.patch_size, spec.patch_size), task)
    assert ipt_flops(spec, task) == counter.get_total_flops()


def test_full_model_is_the_papers_33_gmac():
    macs = ipt_macs(IPTSpec.official("sr_x2"))
    assert 33.0e9 < macs["total"] < 33.7e9  # "33G FLOPs" in the paper: multiply-accumulates
    assert macs["body.encoder"] + macs["body.decoder"] > 0.9 * macs["total"]


def test_profile_parts_add_up_to_the_network():
    """The per-part profile times pieces that, chained, are the whole network, in both frameworks."""
    from bench.profile_parts import profile, render

    rows = profile("tiny", batch=2, runs=1)
    assert len(rows) == 5 and all(r["ms_warm"] > 0 and r["torch_warm"] > 0 for r in rows)
    assert max(r["rel_err"] for r in rows) < 1e-4  # each MindSpore part computes what the PyTorch part does
    assert rows[-1]["vs_full_network"] < 1e-5
    assert "| **sum** |" in render(rows, "tiny", 2, 1)


def _store_as_tune_does(spec, mode: str, choice) -> None:
    from ipt_ms import levers
    from ipt_ms.runtime import configure

    configure("cpu", mode)
    assert levers.store_choice(levers.choice_key(spec, "sr_x2"), choice, {"native x1": 0.1}) is not None


def test_bench_runs_the_levers_a_user_gets_and_says_which(levers_cache, monkeypatch):
    """The parent resolves the levers by the library's rule from this user's stored choices
    (the workers' compile cache is a scratch folder) and `--levers default` ignores them."""
    from bench.run import levers_label, resolve_levers
    from ipt_ms.levers import Levers

    spec = IPTSpec.tiny(scales=(2,), task_names=("sr_x2",))  # the --smoke model
    _store_as_tune_does(spec, "graph", Levers(False, 1))
    every = ["mindspore-graph", "mindspore-pynative", "torch", "onnxruntime"]
    stored = {"conv_as_matmul": False, "call_tiles": 1, "origin": "stored"}
    built_in = {"conv_as_matmul": None, "call_tiles": None, "origin": "built-in"}
    assert resolve_levers(spec, "sr_x2", None, "cpu", every) == {"graph": stored, "pynative": built_in}
    assert resolve_levers(spec, "sr_x2", "stored", "cpu", every)["graph"] == stored
    assert resolve_levers(spec, "sr_x2", "default", "cpu", every) == {"graph": built_in, "pynative": built_in}
    monkeypatch.setenv("IPT_MS_LEVERS", "default")  # what a user gets follows the environment too
    assert resolve_levers(spec, "sr_x2", None, "cpu", every)["graph"] == built_in
    assert resolve_levers(spec, "sr_x2", "stored", "cpu", every)["graph"] == stored  # --levers wins
    assert resolve_levers(spec, "sr_x2", None, "cpu", ["torch"]) == {}
    assert levers_label(stored) == "native convolutions, 1 tile per call (stored)" and levers_label({}) == "-"


def test_bench_worker_runs_with_the_levers_it_is_handed(levers_cache, tmp_path):
    """What a worker records is what its predictor ran with, not merely what it was asked."""
    from bench.run import Job, make_weights, run_job

    spec = IPTSpec.tiny(scales=(2,), task_names=("sr_x2",))
    weights = make_weights(spec, tmp_path)
    asked = {"conv_as_matmul": False, "call_tiles": 1, "origin": "stored"}
    result = run_job(Job("mindspore-graph", 2, 1, weights, "sr_x2", levers=asked))
    assert result.levers == asked and len(result.warm_s) == 1
    result = run_job(Job("mindspore-graph", 2, 1, weights, "sr_x2",
                         levers={"conv_as_matmul": None, "call_tiles": None, "origin": "built-in"}))
    assert result.levers == {"conv_as_matmul": True, "call_tiles": 2, "origin": "built-in"}  # CPU: im2col, <= batch
    assert run_job(Job("torch", 2, 1, weights, "sr_x2")).levers == {}


def test_rounds_pool_the_calls_and_keep_each_rounds_ratio():
    """`--rounds`: one row per job with every round's warm calls, the worst peak and load, and
    per round the throughput against PyTorch's of the same round."""
    from bench.run import Job, Result, merge_rounds, round_ratios

    def result(framework, batch, warm, peak, others=0.0, state=""):
        return Result(Job(framework, batch, len(warm), "w", "sr_x2", cache_state=state), first_s=9.0,
                      warm_s=list(warm), peak_rss_mib=peak, others_cores=others)

    rounds = [result("mindspore-graph", 1, [2.0], 10, state="cold"),
              result("mindspore-graph", 1, [1.0, 1.2], 10, state="warm"), result("torch", 1, [2.0, 2.0], 5),
              result("mindspore-graph", 1, [3.0, 3.0], 12, 0.05, state="warm"), result("torch", 1, [1.5, 1.5], 6)]
    ratios = round_ratios(rounds)
    assert ratios == {("mindspore-graph", 1): [2.0 / 1.1, 1.5 / 3.0]}
    merged = merge_rounds(rounds)
    assert [(r.job.framework, r.job.cache_state) for r in merged] == [
        ("mindspore-graph", "cold"), ("mindspore-graph", "warm"), ("torch", "")]
    warm = merged[1]
    assert warm.warm_s == [1.0, 1.2, 3.0, 3.0] and warm.peak_rss_mib == 12 and warm.others_cores == 0.05
    assert merged[2].warm_s == [2.0, 2.0, 1.5, 1.5] and merged[0].warm_s == [2.0]


def test_training_rounds_pool_the_steps():
    from bench.train_step import merge_rounds, round_ratios

    def row(framework, steps, peak):
        return {"framework": framework, "first_step_s": 20.0, "median_step_s": sorted(steps)[len(steps) // 2],
                "min_step_s": min(steps), "step_s": steps, "peak_rss_mb": peak, "others_cores": 0.0}

    per_round = [{"mindspore-graph": row("mindspore-graph", [3.0, 3.2, 3.1], 50), "torch": row("torch", [3.3] * 3, 20)},
                 {"mindspore-graph": row("mindspore-graph", [4.0, 4.1, 4.2], 55), "torch": row("torch", [4.0] * 3, 21)}]
    assert round_ratios(per_round) == {"mindspore-graph": [3.3 / 3.1, 4.0 / 4.1]}
    merged = {r["framework"]: r for r in merge_rounds(per_round)}
    ms = merged["mindspore-graph"]
    assert ms["step_s"] == [3.0, 3.2, 3.1, 4.0, 4.1, 4.2] and ms["median_step_s"] == 3.6 and ms["min_step_s"] == 3.0
    assert ms["peak_rss_mb"] == 55 and ms["rounds"] == 2 and merged["torch"]["peak_rss_mb"] == 21
