"""The persistent compile cache (`ipt_ms.compile_cache`): right graphs across processes.

MindSpore's own cache, switched on as it is, handed a derain run the graph a denoise_30
run had compiled (same shapes: derain silently returned denoise_30's output) and crashed
sr_x2 -> denoise_30. Every test here runs real processes on one cache folder and compares
their outputs bit for bit with a run that has the cache off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("compile_cache_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def run_worker(tmp_path: Path, name: str, cache, what: str, order: str, batch: int = 1, background=False):
    env = dict(os.environ)
    env["IPT_MS_COMPILE_CACHE"] = str(cache)
    out = tmp_path / f"{name}.npz"
    cmd = [sys.executable, str(WORKER), str(out), what, order, str(batch)]
    if background:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["stats"], dict(np.load(out))


def by_task(outputs: dict) -> dict:
    return {key.split("_", 1)[1]: value for key, value in outputs.items() if key[0].isdigit()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Every task's output with the cache off."""
    tmp = tmp_path_factory.mktemp("reference")
    stats, out = run_worker(tmp, "reference", "off", "infer", "sr_x2,denoise_30,derain")
    assert stats == {"hits": 0, "misses": 0, "stored": 0, "uncached": 3}
    return by_task(out)


def test_two_tasks_with_the_same_shapes_never_get_each_others_graph(tmp_path, reference):
    cache = tmp_path / "cache"
    stats, first = run_worker(tmp_path, "a", cache, "infer", "denoise_30")
    assert stats["misses"] == 1 and stats["stored"] == 1
    stats, second = run_worker(tmp_path, "b", cache, "infer", "derain")  # same shapes, other task
    assert stats["hits"] == 0 and stats["misses"] == 1
    assert np.array_equal(by_task(first)["denoise_30"], reference["denoise_30"])
    assert np.array_equal(by_task(second)["derain"], reference["derain"])
    assert not np.array_equal(reference["derain"], reference["denoise_30"])  # the mix-up would show
    # both now come from the cache, in either order, and stay bit-exact
    stats, third = run_worker(tmp_path, "c", cache, "infer", "derain,denoise_30")
    assert stats["hits"] == 2 and stats["misses"] == 0
    assert np.array_equal(third["0_derain"], reference["derain"])
    assert np.array_equal(third["1_denoise_30"], reference["denoise_30"])


def test_sr_x2_then_denoise_30_and_back(tmp_path, reference):
    cache = tmp_path / "cache"
    run_worker(tmp_path, "a", cache, "infer", "sr_x2")
    stats, out = run_worker(tmp_path, "b", cache, "infer", "denoise_30,sr_x2")  # a miss first, then a stored graph
    assert stats["misses"] == 1
    assert np.array_equal(out["0_denoise_30"], reference["denoise_30"])
    assert np.array_equal(out["1_sr_x2"], reference["sr_x2"])
    stats, out = run_worker(tmp_path, "c", cache, "infer", "sr_x2,denoise_30")
    assert stats == {"hits": 2, "misses": 0, "stored": 0, "uncached": 0}
    assert out["0_sr_x2"].shape == (1, 3, 48, 48) and out["1_denoise_30"].shape == (1, 3, 24, 24)
    assert np.array_equal(out["0_sr_x2"], reference["sr_x2"])
    assert np.array_equal(out["1_denoise_30"], reference["denoise_30"])


def test_training_steps_from_the_cache_equal_uncached_training(tmp_path):
    cache = tmp_path / "cache"
    _, plain = run_worker(tmp_path, "plain", "off", "train", "sr_x2,denoise_30")
    stats, cold = run_worker(tmp_path, "cold", cache, "train", "sr_x2,denoise_30")
    assert stats["misses"] == 2
    stats, warm = run_worker(tmp_path, "warm", cache, "train", "sr_x2,denoise_30")
    assert stats["hits"] == 2 and stats["misses"] == 0
    for key in plain:
        assert np.array_equal(plain[key], cold[key]) and np.array_equal(plain[key], warm[key]), key


def test_concurrent_writers_and_a_damaged_entry(tmp_path, reference):
    cache = tmp_path / "cache"
    procs = [run_worker(tmp_path, f"p{i}", cache, "infer", "derain,sr_x2", background=True) for i in range(2)]
    for proc, out in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        got = dict(np.load(out))
        assert np.array_equal(got["0_derain"], reference["derain"])
        assert np.array_equal(got["1_sr_x2"], reference["sr_x2"])
    graphs = sorted(cache.rglob("*.mindir"))
    assert len(graphs) == 2 and not list(cache.rglob("*partial*"))
    for graph in graphs:  # truncate one and flip a byte in the other: both must be recompiled
        data = graph.read_bytes()
        graph.write_bytes(data[: len(data) // 2] if graph == graphs[0] else data[:-1] + bytes([data[-1] ^ 1]))
    stats, out = run_worker(tmp_path, "after", cache, "infer", "derain,sr_x2")
    assert stats["hits"] == 0 and stats["misses"] == 2
    assert np.array_equal(out["0_derain"], reference["derain"])
    assert np.array_equal(out["1_sr_x2"], reference["sr_x2"])


def test_off_writes_nothing_and_the_default_is_per_user(tmp_path, monkeypatch):
    from ipt_ms import compile_cache

    stats, _ = run_worker(tmp_path, "off", "0", "infer", "sr_x2")
    assert stats == {"hits": 0, "misses": 0, "stored": 0, "uncached": 1}
    monkeypatch.delenv("IPT_MS_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_dir() == tmp_path / "xdg" / "ipt-ms" / "compile"
    for off in ("0", "off", "OFF", "false", "no"):
        monkeypatch.setenv("IPT_MS_COMPILE_CACHE", off)
        assert compile_cache.cache_dir() is None
    monkeypatch.setenv("IPT_MS_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache.cache_dir() == tmp_path / "mine"


def test_the_key_changes_with_everything_compiled_in(monkeypatch):
    import mindspore as ms

    from ipt_ms import compile_cache
    from ipt_ms.inference import build_model
    from ipt_ms.spec import IPTSpec
    from ipt_ms.train.losses import IPTLoss

    spec = IPTSpec.tiny(scales=(2, 1), task_names=("sr_x2", "denoise_30"), num_queries=2)
    net = build_model(spec)
    x = ms.Tensor(np.zeros((1, 3, 24, 24), np.float32))
    base = compile_cache.graph_key(net, (x, 0), {})
    assert compile_cache.graph_key(build_model(spec), (x, 0), {}) == base  # other weights, same graph
    variants = {
        "task": compile_cache.graph_key(net, (x, 1), {}),
        "shape": compile_cache.graph_key(net, (ms.Tensor(np.zeros((2, 3, 24, 24), np.float32)), 0), {}),
        "flag": compile_cache.graph_key(net, (x, 0, False, True), {}),
        "architecture": compile_cache.graph_key(build_model(IPTSpec.tiny(scales=(2, 1), task_names=(
            "sr_x2", "denoise_30"), num_queries=2, layer_norm_eps=1e-6)), (x, 0), {}),
        "loss weight": compile_cache.graph_key(IPTLoss(net, "eq5", 0.2), (x, x, 0), {}),
    }
    assert compile_cache.graph_key(IPTLoss(net, "eq5", 0.1), (x, x, 0), {}) != variants["loss weight"]
    net.set_train(True)
    variants["training"] = compile_cache.graph_key(net, (x, 0), {})
    net.set_train(False)
    monkeypatch.setattr(ms, "__version__", "9.9.9")
    variants["mindspore version"] = compile_cache.graph_key(net, (x, 0), {})
    monkeypatch.undo()
    monkeypatch.setitem(compile_cache.keys._source_hashes, "<ipt_ms package>", "edited")
    variants["code"] = compile_cache.graph_key(net, (x, 0), {})
    assert base not in variants.values() and len(set(variants.values())) == len(variants), variants


def test_dependency_hash_matches_what_mindspore_writes(tmp_path):
    """The session folder carries MindSpore's staleness hash; if the formula drifts with a
    MindSpore release, the cache would silently stop hitting."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, mindspore as ms, numpy as np\n"
        "sys.path.insert(0, {!r})\n"
        "import ipt_ms\n"
        "from ipt_ms.compile_cache import scratch as cc\n"
        "ms.set_context(mode=ms.GRAPH_MODE, enable_compile_cache=True, compile_cache_path={!r})\n"
        "@ms.jit\n"
        "def double(a):\n"
        "    return a * 2\n"
        "double(ms.Tensor(np.ones(2, np.float32)))\n"
        "print(cc._dependency_hash())\n".format(str(ROOT), str(tmp_path / "ms")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    written = (tmp_path / "ms" / "rank_0" / "graph_cache" / "compile_dependency.hash").read_text().strip()
    assert done.stdout.strip().splitlines()[-1] == written
