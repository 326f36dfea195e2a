"""bench/zoo_numerics.py: its restatement of the zoo's forward pass is the ipt-ms network in float32,
and its float16 arithmetic really runs in float16 (so the figures in docs/evaluation.md measure that)."""

from __future__ import annotations

import numpy as np

from bench.zoo_numerics import ZooNumericsPredictor, check_against_network
from ipt_ms.spec import IPTSpec


def test_float32_restatement_is_the_network_and_float16_differs(pynative):
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(2, 3, 1), task_names=("sr_x2", "sr_x3", "derain"), num_queries=3)
    state = seeded_state(spec, seed=5)
    for task in spec.task_names:
        assert check_against_network(spec, state, task) < 1e-5
    x = np.random.default_rng(1).uniform(0, 255, (3, 3, 24, 24)).astype(np.float32)
    fp32 = ZooNumericsPredictor(spec, state, "sr_x3", float16=False, eps=1e-7)(x)
    fp16 = ZooNumericsPredictor(spec, state, "sr_x3", float16=True, eps=1e-7)(x)
    assert fp16.shape == fp32.shape == (3, 3, 72, 72) and fp16.dtype == np.float32
    diff = np.abs(fp16 - fp32).max() / np.abs(fp32).max()
    assert 1e-5 < diff < 2e-2  # float16 rounding is visible, and only rounding


def test_command_line_smoke(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(root / "bench" / "zoo_numerics.py"), "--preset", "tiny", "--photos",
                           "1", "--size", "30", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["restatement_check_max_rel"] < 1e-5
    row = result["photos"][0]
    assert row["ipt-ms (fp32, eps 1e-5)"]["dpsnr"] == 0.0 and row["zoo (fp16, eps 1e-7)"]["finite"]
    assert "| zoo (fp16, eps 1e-7) |" in proc.stdout
