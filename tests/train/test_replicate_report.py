"""`make replicate`'s statistics and report (scripts/replicate.py), on made-up scores: the
verdict of a claim follows the 95 % interval of the seed-paired difference, and the report
holds every arm's scores and the three plots."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def replicate():
    spec = importlib.util.spec_from_file_location("replicate", ROOT / "scripts" / "replicate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["replicate"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_interval_is_student_t(replicate):
    mean, half = replicate.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3))


def test_verdicts(replicate):
    assert replicate.verdict([0.5, 0.6, 0.55], "x helps").startswith("held")
    assert replicate.verdict([-0.5, -0.6, -0.55], "x helps").startswith("reversed")
    assert replicate.verdict([0.5, -0.4, 0.1], "x helps").startswith("not resolved")
    assert replicate.verdict([0.5], "x helps").startswith("not resolved (one seed)")


def test_report_has_every_arm_and_plot(replicate, tmp_path):
    rng = np.random.default_rng(0)
    seeds = [0, 1, 2]
    scores = {}
    for task in replicate.TASKS:
        for seed in seeds:
            scores[("scratch", task, seed)] = 28.0 + rng.normal(0, 0.01)
            for arm in replicate.ARMS:
                scores[(arm.name, task, seed)] = 29.0 + rng.normal(0, 0.01)
    text = replicate.write_report(tmp_path / "REPLICATION.md", tmp_path / "runs", seeds, scores, 1.0, "a CPU", 1.0,
                                  ("chelsea", "coffee"))
    assert (tmp_path / "REPLICATION.md").read_text() == text
    for task in replicate.TASKS:
        assert f"| {task} | (a) pre-trained - scratch | +1.0" in text
        assert f"| {task} | (b) lambda 0.1 - lambda 0 | " in text
    assert text.count("held: pre-training helps") == len(replicate.TASKS)
    for plot in ("a_pretraining", "b_contrastive", "c_data"):
        assert (tmp_path / "docs" / "replication" / f"{plot}.png").stat().st_size > 1000
