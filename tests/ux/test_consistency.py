"""Small promises that had drifted apart: presets vs configs, notes instead of silent defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.hostile.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_make_weights_tiny_is_the_model_of_configs_tiny_yaml(tmp_path):
    from ipt_ms.cli.make_weights import preset_spec
    from ipt_ms.convert.weights import load_weights
    from ipt_ms.train.config import load_train_config

    config_spec = load_train_config(str(ROOT / "configs" / "tiny.yaml")).model.spec()
    assert preset_spec("tiny") == config_spec
    proc = run_cli("make-weights", "--preset", "tiny", "-o", tmp_path / "t.ckpt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_weights(tmp_path / "t.ckpt")[0] == config_spec


def test_there_is_one_tiny_model():
    """configs/tiny.yaml (above), `make-weights --preset tiny`, the registry's `ipt_tiny`, doctor's model and
    configs/tiny_finetune.yaml (its sr_x2 head) are all `IPTSpec.tiny` (they had drifted to 8 vs 16 features)."""
    from ipt_ms.doctor import training_spec
    from ipt_ms.presets import preset_spec
    from ipt_ms.registry import model_spec
    from ipt_ms.spec import IPTSpec
    from ipt_ms.train.config import load_train_config

    tiny = IPTSpec.tiny()
    assert model_spec("ipt_tiny") == preset_spec("tiny") == tiny
    sr_x2_only = tiny.replace(scales=(2,), task_names=("sr_x2",), num_queries=1)
    assert training_spec() == sr_x2_only == IPTSpec.tiny(task_names=("sr_x2",))
    assert load_train_config(str(ROOT / "configs" / "tiny_finetune.yaml")).model.spec() == sr_x2_only


def test_a_file_without_recorded_heads_gets_a_note_not_a_silent_default(tmp_path):
    import torch

    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(1,), task_names=("derain",))  # 2 heads, but a bare file cannot say so
    state = seeded_state(spec, 0)
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, tmp_path / "bare.pt")
    proc = run_cli("info", tmp_path / "bare.pt", cwd=tmp_path)
    assert proc.returncode == 0 and "12 heads" in proc.stdout
    assert "bare.pt does not record its number of attention heads: assuming 12" in proc.stderr
    told = run_cli("convert", tmp_path / "bare.pt", tmp_path / "b.ckpt", "--num-heads", "2", cwd=tmp_path)
    assert told.returncode == 0 and "2 heads" in told.stdout and "attention heads" not in told.stderr


def test_convert_help_says_every_output_carries_the_architecture():
    proc = run_cli("convert", "--help")
    text = " ".join(proc.stdout.split())
    assert "stored in every output: .ckpt, .safetensors and .pt/.pth" in text and "--num-heads" in text


def test_synth_and_other_long_commands_take_q():
    for command in ("synth", "parity", "export", "convert", "make-weights", "compare", "restore", "eval",
                    "parity-bench", "doctor"):
        proc = run_cli(command, "--help")
        assert proc.returncode == 0 and "-q, --quiet" in proc.stdout, command
