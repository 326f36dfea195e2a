"""The documented CPU path, as a new user types it (README, docs/training.md), with no
--set: photos -> pretrain (configs/tiny.yaml) -> finetune (configs/tiny_finetune.yaml,
pairs synthesised from the same photo folder) -> synth a benchmark-layout set -> eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _ipt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ipt_ms", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "MS_OM_PATH": str(tmp_path / "om")})
    assert proc.returncode == 0, f"ipt-ms {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_pretrain_finetune_eval_with_the_shipped_configs(tmp_path):
    from ipt_ms.train.metrics import read_metrics

    configs = ROOT / "configs"
    subprocess.run([sys.executable, "-m", "ipt_ms.eval.photos", "runs/photos", "--height", "120", "--width", "120"],
                   cwd=tmp_path, check=True, capture_output=True)
    _ipt(tmp_path, "pretrain", "--config", str(configs / "tiny.yaml"), "--data", "runs/photos", "--max-steps", "12",
         "-q")
    assert (tmp_path / "runs/tiny/model.ckpt").exists()
    out = _ipt(tmp_path, "finetune", "--config", str(configs / "tiny_finetune.yaml"), "--data", "runs/photos",
               "--max-steps", "12", "-q")
    run = tmp_path / "runs/tiny_finetune"
    assert (run / "model.ckpt").exists() and (run / "best_sr_x2.ckpt").exists()
    vals = [r for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "val"]
    assert [r["step"] for r in vals] == [12] and vals[0]["tasks"]["sr_x2"]["baseline"] == "bicubic"
    assert "validation at step 12: sr_x2 PSNR-Y" in out.stdout and "bicubic" in out.stdout
    _ipt(tmp_path, "synth", "runs/photos", "runs/bench/Photos", "--tasks", "sr_x2", "--quiet")
    _ipt(tmp_path, "eval", "--weights", "runs/tiny_finetune/model.ckpt", "--task", "sr_x2", "--data", "runs/bench",
         "--sets", "Photos", "-o", "runs/eval", "-q")
    report = json.loads((tmp_path / "runs/eval/report.json").read_text())
    assert report  # a written report: the whole path ran end to end
