"""Config loading: every shipped YAML, and bad input rejected with the key named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from ipt_ms.config import ConfigError, config_diff, load_config, option, to_dict
from ipt_ms.train.config import load_train_config, resume_mismatch

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_train_config(str(path))
    spec = cfg.model.spec()
    assert spec.num_tasks == len(cfg.model.tasks)
    if cfg.kind == "finetune":
        assert spec.num_tasks == 1
    if path.stem.startswith("finetune_"):  # the paper's fine-tuning recipe
        assert cfg.optim.lr == pytest.approx(2e-5) and cfg.schedule.epochs == 30


def test_shipped_set_is_complete():
    names = {p.stem for p in CONFIGS}
    expected = {"pretrain", "tiny", "tiny_finetune"} | {f"finetune_{t}" for t in
                                      ("sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain", "deblur")}
    assert expected <= names


def test_pretrain_config_is_the_paper_recipe():
    cfg = load_train_config("configs/pretrain.yaml")
    assert cfg.model.tasks == ["sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain"]
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.eps) == (5e-5, (0.9, 0.999), 1e-8)
    assert cfg.schedule.lr_at(cfg.optim.lr, 199) == pytest.approx(5e-5)
    assert cfg.schedule.lr_at(cfg.optim.lr, 200) == pytest.approx(2e-5)
    assert (cfg.schedule.epochs, cfg.loss.contrastive, cfg.loss.weight) == (300, "eq5", 0.1)
    assert cfg.model.spec().num_parameters() > 100_000_000


def test_deblur_config_uses_256_patches_of_8():
    spec = load_train_config("configs/finetune_deblur.yaml").model.spec()
    assert (spec.patch_size, spec.patch_dim, spec.task_names) == (256, 8, ("deblur",))


@pytest.mark.parametrize("text, key, words", [
    ("optim:\n  lrr: 1.0e-4\n", "optim.lrr", "did you mean 'optim.lr'"),
    ("optimizer:\n  lr: 1.0e-4\n", "optimizer", "unknown key"),
    ("optim:\n  lr: fast\n", "optim.lr", "expected a number"),
    ("data:\n  batch_size: 2.5\n", "data.batch_size", "expected an integer"),
    ("data:\n  batch_size: true\n", "data.batch_size", "expected an integer"),
    ("output:\n  progress: 1\n", "output.progress", "true or false"),
    ("model:\n  tasks: sr_x2\n", "model.tasks", "expected a list"),
    ("model:\n  tasks: [sr_x2, blur_9]\n", "model.tasks[1]", "unknown task name"),
    ("optim:\n  lr: 0\n", "optim.lr", "must be > 0"),
    ("optim:\n  betas: [0.9, 1.0]\n", "optim.betas[1]", "must be < 1"),
    ("loss:\n  contrastive: simclr\n", "loss.contrastive", "must be one of"),
    ("schedule:\n  milestones: [200, 100]\n", "schedule.milestones", "increasing"),
    ("data:\n  batch_size: 1\n", "data.batch_size", "need >= 2"),
    ("kind: finetune\n", "model.tasks", "exactly one task"),
    ("model:\n  n_feats: 8\n  num_heads: 5\n", "model", "not divisible by num_heads"),
    ("train:\n  loss_scale:\n    factor: 1\n", "train.loss_scale.factor", "must be > 1"),
    ("optim:\n  lr: .inf\n", "optim.lr", "finite number"),
    ("schedule:\n  kind: linear\n", "schedule.kind", "must be one of"),
    ("train:\n  ema_decay: 1.0\n", "train.ema_decay", "must be < 1"),
    ("train:\n  accumulate: 0\n", "train.accumulate", "must be >= 1"),
    ("val:\n  every: 10\n  data: x\n  holdout: 2\n", "val.holdout", "not both"),
    ("model:\n  n_feats: 8\nmodel:\n  n_feats: 16\n", "'model'", "appears twice"),
    # pydantic's lax mode would take these; the config's Flag/Integer/Number types do not
    ("optim:\n  lr: true\n", "optim.lr", "expected a number, got True"),
    ("data:\n  batch_size: '3'\n", "data.batch_size", "expected an integer, got '3'"),
    ("output:\n  progress: 'yes'\n", "output.progress", "true or false"),
    # limits on list items (in the annotation) and on Literal choices built from the project's tables
    ("schedule:\n  milestones: [0, 3]\n", "schedule.milestones[0]", "must be >= 1, got 0"),
    ("optim:\n  betas: [0.9]\n", "optim.betas", "expected a list of 2 items, got 1"),
    ("train:\n  device: tpu\n", "train.device", "must be one of 'auto'"),
    ("val:\n  protocol: nearest\n", "val.protocol", "must be one of 'official'"),
    ("1: 2\n", "1", "unknown key"),
    # an unknown key is named before a bad value beside it
    ("optim:\n  lr: fast\n  lrr: 1\n", "optim.lrr", "did you mean 'optim.lr'"),
])
def test_bad_config_names_the_key(tmp_path, text, key, words):
    with pytest.raises(ConfigError) as err:
        load_train_config(str(write(tmp_path, text)))
    message = str(err.value)
    assert key in message and words in message, message
    assert "cfg.yaml" in message
    assert "\n" not in message and "pydantic" not in message and "Input should" not in message, message


def test_empty_section_takes_the_defaults(tmp_path):
    cfg = load_train_config(str(write(tmp_path, "val:\noptim:\n  lr: 1.0e-4\n")))
    assert cfg.val.every is None and cfg.optim.lr == 1e-4


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    # PyYAML reads 5e-5 (no dot) as a string; a float field accepts it
    assert load_train_config(str(write(tmp_path, "optim:\n  lr: 5e-5\n"))).optim.lr == 5e-5


def test_overrides(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 1.0e-4\n")
    cfg = load_train_config(str(path), ["optim.lr=3e-4", "model.tasks=[sr_x4, derain]", "optim.grad_clip_norm=1"])
    assert cfg.optim.lr == 3e-4 and cfg.model.tasks == ["sr_x4", "derain"] and cfg.optim.grad_clip_norm == 1.0
    with pytest.raises(ConfigError, match=r"unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)"):
        load_train_config(str(path), ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optim.lr is not a section"):
        load_train_config(str(path), ["optim.lr.x=1"])
    with pytest.raises(ConfigError, match="must look like"):
        load_train_config(str(path), ["optim.lr"])


def test_unreadable_yaml_says_where(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_train_config(str(write(tmp_path, "optim:\n  lr: [1\n")))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_train_config(str(write(tmp_path, "- 1\n- 2\n")))
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(str(tmp_path / "missing.yaml"))


def test_resume_mismatch_lists_what_differs():
    old = load_train_config("configs/tiny.yaml")
    new = load_train_config("configs/tiny.yaml", ["optim.lr=1e-3", "model.n_feats=8", "train.max_steps=5",
                                                  "output.keep_last=9", "schedule.epochs=80"])
    diffs = resume_mismatch(to_dict(old), new)
    # optim.lr may change on resume (issue 18: after a NaN stop the advice is a lower lr)
    assert sorted(d.split(":")[0] for d in diffs) == ["model.n_feats"]
    # cosine decays over schedule.epochs: extending it would change the lr of the steps to come
    cosine = load_train_config("configs/tiny.yaml", ["schedule.kind=cosine"])
    longer = load_train_config("configs/tiny.yaml", ["schedule.kind=cosine", "schedule.epochs=80"])
    assert [d.split(":")[0] for d in resume_mismatch(to_dict(cosine), longer)] == ["schedule.epochs"]


@dataclass
class _Inner:
    mode: Literal["a", "b"] = "a"
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Outer:
    name: str = "x"
    ratio: Optional[float] = option(None, min=0.0, max=1.0)
    inner: _Inner = field(default_factory=_Inner)
    pair: tuple[int, str] = (1, "a")


def test_generic_loader_handles_nested_optional_literal_and_dicts():
    cfg = load_config(_Outer, data={"ratio": 1, "inner": {"mode": "b", "sizes": {"w": 3}}, "pair": [2, "z"]})
    assert cfg.ratio == 1.0 and cfg.inner.mode == "b" and cfg.inner.sizes == {"w": 3} and cfg.pair == (2, "z")
    assert load_config(_Outer, data={"ratio": None}).ratio is None
    with pytest.raises(ConfigError, match=r"inner.sizes.w: expected an integer"):
        load_config(_Outer, data={"inner": {"sizes": {"w": "big"}}})
    with pytest.raises(ConfigError, match=r"ratio: must be <= 1"):
        load_config(_Outer, data={"ratio": 1.5})
    with pytest.raises(ConfigError, match=r"pair: expected a list of 2 items"):
        load_config(_Outer, data={"pair": [1]})
    with pytest.raises(ConfigError, match=r"inner.mode: must be one of 'a', 'b'"):
        load_config(_Outer, data={"inner": {"mode": "c"}})
    assert config_diff(_Outer(), load_config(_Outer, data={"name": "y"})) == [("name", "x", "y")]


def test_resume_compares_data_folders_by_what_they_name(tmp_path, monkeypatch):
    """`--data runs/photos` then `--data /abs/runs/photos` is one folder; another folder is not."""
    (tmp_path / "runs" / "photos").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    tiny = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")
    old = load_train_config(tiny, ["data.root=runs/photos"])
    same = load_train_config(tiny, [f"data.root={tmp_path / 'runs' / 'photos'}"])
    other = load_train_config(tiny, [f"data.root={tmp_path / 'other'}"])
    assert resume_mismatch(to_dict(old), same) == []
    assert [d.split(":")[0] for d in resume_mismatch(to_dict(old), other)] == ["data.root"]
