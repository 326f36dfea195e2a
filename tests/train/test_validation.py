"""Validation during training, EMA, schedules and the run's logs (in-process, tiny model).

The validation figures must be the evaluation code's: the best weights, evaluated by
`ipt-ms eval` on the same folder, give the PSNR the run reported. TensorBoard files must
be readable by TensorBoard's own reader.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.train.helpers import ArraySource, tiny_config

MODEL = {"tasks": ["sr_x2"], "n_feats": 8, "patch_size": 24, "num_heads": 2, "num_layers": 1}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A benchmark-layout folder: data/Photos/HR with 2 photos (LR made by MATLAB bicubic)."""
    from ipt_ms.eval.photos import write_sample_photos

    root = tmp_path_factory.mktemp("bench")
    write_sample_photos(root / "Photos" / "HR", ("astronaut", "coffee"), height=60, width=72)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bench):
    from ipt_ms.train.loop import Trainer

    run = tmp_path_factory.mktemp("val") / "run"
    cfg = tiny_config(run, model=MODEL, loss={"contrastive": "none"},
                      schedule={"epochs": 2, "milestones": [], "kind": "cosine", "warmup_steps": 2, "min_lr": 1e-4},
                      train={"ema_decay": 0.5}, val={"every": 3, "data": str(bench), "sets": ["Photos"], "strips": 1},
                      output={"tensorboard": True, "checkpoint_every": 100})
    trainer = Trainer(cfg, source_factory=lambda w, r: ArraySource((("sr_x2", 2),), steps_per_epoch=4), quiet=True)
    result = trainer.run()
    return trainer, result


def test_validation_reports_what_eval_computes(trained, bench, tmp_path):
    from ipt_ms.eval.run import EvalRequest, run_eval
    from ipt_ms.train.metrics import read_metrics

    trainer, result = trained
    vals = [r for r in read_metrics(result.metrics) if r.get("kind") == "val"]
    assert [r["step"] for r in vals] == [3, 6, 8]  # every 3 steps, and the final weights
    best = max(vals, key=lambda r: r["tasks"]["sr_x2"]["psnr_y"])
    report = vals[-1]["tasks"]["sr_x2"]
    assert report["best_step"] == best["step"] and report["baseline"] == "bicubic"
    assert result.best["sr_x2"]["step"] == best["step"]
    # `ipt-ms eval` on the same folder with best_sr_x2.ckpt: the same PSNR-Y, SSIM-Y and baseline
    outcome = run_eval(EvalRequest(weights=str(trainer.run_dir / "best_sr_x2.ckpt"), task="sr_x2", data=str(bench),
                                   sets=["Photos"], lr="auto", out=str(tmp_path / "eval"), progress=False))
    psnrs = [r["runs"]["mindspore"]["psnr"] for r in outcome.records]
    ssims = [r["runs"]["mindspore"]["ssim"] for r in outcome.records]
    assert best["tasks"]["sr_x2"]["psnr_y"] == pytest.approx(float(np.mean(psnrs)), abs=1e-9)
    assert best["tasks"]["sr_x2"]["ssim_y"] == pytest.approx(float(np.mean(ssims)), abs=1e-9)
    # the baseline is the evaluation module's bicubic, scored the same way
    from ipt_ms.data.folders import benchmark
    from ipt_ms.eval.baseline import baseline_output
    from ipt_ms.metrics import psnr
    from ipt_ms.tasks import parse_task

    task = parse_task("sr_x2")
    pairs = list(benchmark(bench, "Photos", task, lr="auto"))
    expected = np.mean([psnr(baseline_output(p.lq, task), p.gt, 2) for p in pairs])
    assert report["baseline_psnr_y"] == pytest.approx(float(expected), abs=1e-9)
    assert "sr_x2 PSNR-Y" in "\n".join(result.summary_lines())


def test_ema_weights_are_exported_and_validated(trained):
    from ipt_ms.convert.keymap import mindspore_to_torch
    from ipt_ms.convert.weights import load_weights
    from ipt_ms.train.weights import network_arrays

    trainer, result = trained
    _, exported = load_weights(result.weights)
    averages = dict(network_arrays(trainer.net))
    averages.update(trainer.ema.arrays())
    expected = mindspore_to_torch(averages, trainer.spec)
    raw = mindspore_to_torch(network_arrays(trainer.net), trainer.spec)
    assert all(np.array_equal(exported[k], expected[k]) for k in expected)
    assert any(not np.array_equal(exported[k], raw[k]) for k in raw)  # the averages, not the last weights


def test_tensorboard_events_and_text_log(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, result = trained
    events = list(trainer.run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(trainer.run_dir), size_guidance={"images": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/l1", "train/contrastive", "train/lr", "train/grad_norm", "train/pairs_per_s",
                "val/sr_x2/psnr_y", "val/sr_x2/ssim_y", "val/sr_x2/baseline_psnr_y"):
        assert tag in scalars, (tag, scalars)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 9))
    lrs = [e.value for e in acc.Scalars("train/lr")]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)  # warm-up: lr/2, lr
    assert lrs[-1] == pytest.approx(1e-4)  # cosine down to min_lr at the last step
    images = acc.Tags()["images"]
    assert images and all(t.startswith("val/sr_x2/") for t in images)
    strip = acc.Images(images[0])[0]
    assert strip.width > 2 * strip.height  # input | output | target, side by side
    text = (trainer.run_dir / "train.log").read_text()
    assert "step 8 epoch 1 batch 3 task sr_x2: loss" in text
    assert "validation at step 3: sr_x2 PSNR-Y" in text and "bicubic" in text


def test_schedules():
    from ipt_ms.train.config import ScheduleConfig
    from ipt_ms.train.schedules import learning_rate

    multistep = ScheduleConfig(epochs=4, milestones=[2], gamma=0.5)
    assert [learning_rate(multistep, 1.0, t, 10) for t in (0, 19, 20, 39)] == [1.0, 1.0, 0.5, 0.5]
    warm = ScheduleConfig(epochs=4, milestones=[2], gamma=0.5, warmup_steps=4)
    assert [learning_rate(warm, 1.0, t, 10) for t in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cosine = ScheduleConfig(epochs=2, kind="cosine", warmup_steps=2, min_lr=0.1, milestones=[])
    values = [learning_rate(cosine, 1.0, t, 10) for t in range(20)]
    assert values[:3] == [0.5, 1.0, 1.0] and values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[1:], values[2:]))
    assert values[11] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 9 / 17)))


def test_grayscale_files_warn_once_and_are_counted(tmp_path, caplog):
    """2 grayscale photos read hundreds of times: one line per file, and the count in the summary."""
    import logging

    from ipt_ms.data.imageio import write_image
    from ipt_ms.eval.photos import sample_photo
    from ipt_ms.train.loop import train

    folder = tmp_path / "photos"
    gray = sample_photo("astronaut", 64, 64).mean(axis=2).astype(np.uint8)
    write_image(folder / "gray_a.png", gray)
    write_image(folder / "gray_b.png", gray[::-1])
    write_image(folder / "colour.png", sample_photo("coffee", 64, 64))
    cfg = tiny_config(tmp_path / "run", data={"root": str(folder), "samples_per_epoch": 12},
                      loss={"contrastive": "none"}, schedule={"epochs": 10, "milestones": []}, train={"max_steps": 20})
    with caplog.at_level(logging.INFO, logger="ipt_ms"):
        result = train(cfg, quiet=True)
    notes = [r.getMessage() for r in caplog.records if "grayscale image" in r.getMessage()]  # not the run folder
    assert len(notes) == 2 and {n.split(":")[0].rsplit("/", 1)[-1] for n in notes} == {"gray_a.png", "gray_b.png"}
    assert result.image_notes == {"grayscale": 2}
    assert "grayscale" in "\n".join(result.summary_lines())
    assert (tmp_path / "run" / "train.log").read_text().count("grayscale image") == 2
