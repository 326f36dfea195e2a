"""The small model that ships in the package (`ipt_small`, docs/model_card_small.md): it loads
offline through the registry and the CLI, says where it came from, and restores a photo it
was never trained on better than the baseline. A model that ships without working is worse
than none, so these checks use the real shipped file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ipt_ms.errors import IPTError

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "IPT_MS_LEVERS": "default"}
    return subprocess.run([sys.executable, "-m", "ipt_ms", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_shipped_file_is_in_the_package_and_small():
    from ipt_ms.registry import PRETRAINED_DIR, pretrained_weights

    path = pretrained_weights("ipt_small")
    assert path.parent == PRETRAINED_DIR
    assert path.stat().st_size < 30e6  # the budget for weights in the repository


def test_create_model_pretrained_loads_the_registered_architecture():
    import ipt_ms
    from ipt_ms.convert.weights import read_weight_file
    from ipt_ms.registry import model_spec, pretrained_weights

    net, spec = ipt_ms.create_model("ipt_small", pretrained=True)
    assert spec == model_spec("ipt_small")
    assert sum(p.size for p in net.get_parameters()) == pytest.approx(4.0e6, rel=0.02)
    record = read_weight_file(pretrained_weights("ipt_small")).provenance
    assert record["kind"] == "converted" and record["source_provenance"]["kind"] == "trained"


def test_pretrained_refusals_are_one_line():
    import ipt_ms

    with pytest.raises(IPTError, match="no weights ship with ipt_tiny"):
        ipt_ms.create_model("ipt_tiny", pretrained=True)
    with pytest.raises(IPTError, match="either a checkpoint or pretrained"):
        ipt_ms.create_model("ipt_small", checkpoint="x.ckpt", pretrained=True)


def test_missing_shipped_file_names_the_path(monkeypatch, tmp_path):
    from ipt_ms import registry

    monkeypatch.setattr(registry, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(IPTError, match="missing from this installation"):
        registry.pretrained_weights("ipt_small")


def test_restore_model_denoises_a_held_out_photo(tmp_path):
    """`ipt-ms restore --model ipt_small` on a noisy crop of a held-out photo beats the noisy input."""
    from ipt_ms.data.degrade import Degrader
    from ipt_ms.data.imageio import read_image, write_image
    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, sample_photo
    from ipt_ms.metrics import psnr

    name = HELD_OUT_PHOTOS[0]
    noisy, clean = Degrader("denoise_30")(sample_photo(name, 96, 96), seed=0, name=name)
    src = write_image(tmp_path / "noisy.png", noisy)
    before = src.read_bytes()
    proc = cli("restore", "--model", "ipt_small", "--task", "denoise_30", str(src), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "seeded random" not in proc.stderr  # the shipped weights are trained ones
    restored = read_image(tmp_path / "out" / "noisy_denoise_30.png")
    assert psnr(restored, clean) > psnr(noisy, clean) + 2.0
    assert src.read_bytes() == before


def test_restore_model_without_shipped_weights_is_one_line(tmp_path):
    photo = tmp_path / "p.png"
    from ipt_ms.data.imageio import write_image

    write_image(photo, np.zeros((8, 8, 3), np.uint8))
    proc = cli("restore", "--model", "ipt_tiny", str(photo), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no weights ship with ipt_tiny" in proc.stderr
    proc = cli("restore", "--model", "ipt_small", "--weights", str(photo), str(photo), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_info_shows_the_training_provenance():
    from ipt_ms.registry import pretrained_weights

    proc = cli("info", str(pretrained_weights("ipt_small")))
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout and "converted" in proc.stdout


def test_training_set_never_holds_a_held_out_photo():
    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, TRAINING_PHOTOS, training_images

    assert not set(TRAINING_PHOTOS) & set(HELD_OUT_PHOTOS)
    with pytest.raises(IPTError, match="held out"):
        training_images(("astronaut", "cat"))  # scikit-image's `cat` is `chelsea` again


def test_showcase_fails_weights_that_do_not_restore(tmp_path):
    """The demo's check: seeded random weights do not beat the baseline, so exit 1 and say so."""
    weights = tmp_path / "seeded.safetensors"
    made = cli("make-weights", "--preset", "tiny", "--tasks", "denoise_30", "--seed", "0", "-o", str(weights))
    assert made.returncode == 0, made.stderr
    proc = subprocess.run([sys.executable, "-m", "ipt_ms.eval.showcase", str(tmp_path / "show"), "--weights",
                           str(weights), "--tasks", "denoise_30", "--crop", "48"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL: no gain over the baseline on denoise_30" in proc.stdout
    assert (tmp_path / "show" / "coffee_denoise_30_side_by_side.png").is_file()
