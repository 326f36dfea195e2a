"""The training commands' argument handling (no training: every case fails before it)."""

from __future__ import annotations

import pytest

from ipt_ms.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_bad_config_key_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  learning_rate: 1.0e-4\n")
    code, err = run(capsys, "pretrain", "--config", str(cfg))
    assert code == 2 and err.count("\n") == 1
    assert "optim.learning_rate: unknown key" in err and err.startswith("ipt-ms pretrain: error:")


def test_override_typo_and_wrong_type(tmp_path, capsys):
    code, err = run(capsys, "pretrain", "--config", "configs/tiny.yaml", "--set", "optim.lr=fast")
    assert code == 2 and "optim.lr: expected a number, got 'fast'" in err
    code, err = run(capsys, "train", "--config", "configs/tiny.yaml", "--set", "schedule.epoch=3")
    assert code == 2 and "did you mean 'schedule.epochs'" in err


def test_command_must_match_the_config_kind(capsys):
    code, err = run(capsys, "pretrain", "--config", "configs/finetune_sr_x2.yaml")
    assert code == 2 and "is a finetune config" in err
    code, err = run(capsys, "finetune", "--config", "configs/pretrain.yaml")
    assert code == 2 and "is a pretrain config" in err


def test_missing_data_folder_is_named(tmp_path, capsys):
    code, err = run(capsys, "pretrain", "--config", "configs/tiny.yaml", "-o", str(tmp_path / "run"))
    assert code == 2 and "data.root: set the training data folder" in err
    code, err = run(capsys, "pretrain", "--config", "configs/tiny.yaml", "--data", str(tmp_path / "none"),
                    "-o", str(tmp_path / "run"))
    assert code == 2 and "none" in err


def test_resume_without_checkpoint(tmp_path, capsys):
    code, err = run(capsys, "pretrain", "--config", "configs/tiny.yaml", "-o", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "nothing to resume" in err


@pytest.mark.parametrize("command", ["pretrain", "finetune", "train"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out
