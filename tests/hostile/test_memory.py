"""Memory predicted before the work (issue 18, item 7): refuse in one line instead of being OOM-killed.

The refusals are tested with IPT_MS_MEMORY_LIMIT standing in for a small machine (a real
9400 x 9500 run would take minutes and tens of GB); the estimator itself is checked
against a real child's peak memory, and against the sizes the audit measured.
"""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.data.imageio import write_image
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    assert run_cli("make-weights", "--preset", "tiny", "--tasks", "sr_x2", "--seed", "0", "-o", "w.pt",
                   cwd=root).returncode == 0
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    write_image(root / "photos" / "big.png", (rng.random((512, 512, 3)) * 255).astype(np.uint8))
    write_image(root / "small.png", (rng.random((96, 80, 3)) * 255).astype(np.uint8))
    return root


def test_restore_is_refused_before_any_tile_when_it_cannot_fit(files):
    before = Snapshot.take(files, dirs=True)
    proc = run_cli("restore", "photos/big.png", "--weights", "w.pt", "--task", "sr_x2", "-o", "out", "--device",
                   "CPU", "--compile-cache", "off", cwd=files, env={"IPT_MS_MEMORY_LIMIT": "1G"})
    line = assert_one_line_error(proc, "photos/big.png", "(512x512, x2, --protocol official", "IPT_MS_MEMORY_LIMIT=1G")
    assert "--protocol zoo needs about" in line  # the way out that fits
    Snapshot.take(files, dirs=True).assert_same(before)


def test_the_restore_estimate_covers_a_real_run(files):
    """Estimate >= the child's real peak (VmHWM), and not absurdly above it."""
    from ipt_ms.convert.weights import load_weights
    from ipt_ms.memory import RUNTIME_BYTES, restore_bytes, weights_bytes

    proc = run_cli("restore", "small.png", "--weights", "w.pt", "--task", "sr_x2", "-o", "real", "--device", "CPU",
                   "--compile-cache", "off", "-q", cwd=files)
    assert proc.returncode == 0, proc.stderr
    spec, _ = load_weights(files / "w.pt")
    estimate = (RUNTIME_BYTES + weights_bytes(spec) + 96 * 80 * 3
                + restore_bytes(96, 80, spec, scale=2, protocol="official", call_tiles=8)) / 2**20
    assert proc.peak_rss_mb is not None and proc.peak_rss_mb <= estimate <= 3 * proc.peak_rss_mb, \
        (proc.peak_rss_mb, estimate)


def test_the_audit_image_is_refused_on_the_audit_machine():
    """9400 x 9500 with the full model was OOM-killed at 16.6 GB: the estimate must say more than that."""
    from ipt_ms.memory import RUNTIME_BYTES, restore_bytes, weights_bytes
    from ipt_ms.registry import model_spec

    spec = model_spec("ipt_sr_x2")
    for scale, protocol in ((2, "official"), (1, "official")):
        need = RUNTIME_BYTES + weights_bytes(spec) + restore_bytes(9400, 9500, spec, scale=scale,
                                                                   protocol=protocol, call_tiles=8)
        assert need > 16.6 * 2**30


def test_compare_and_synth_are_refused_before_reading_pixels(files):
    before = Snapshot.take(files, dirs=True)
    small = {"IPT_MS_MEMORY_LIMIT": "100M"}
    assert_one_line_error(run_cli("compare", "photos/big.png", "photos/big.png", cwd=files, env=small),
                          "photos/big.png", "memory")
    assert_one_line_error(run_cli("synth", "photos", "synth_out", "--tasks", "sr_x2", cwd=files, env=small),
                          "big.png", "memory")
    Snapshot.take(files, dirs=True).assert_same(before)


def test_make_weights_with_4096_features_is_one_line(files):
    before = Snapshot.take(files, dirs=True)
    proc = run_cli("make-weights", "--n-feats", "4096", "-o", "huge.pt", cwd=files)
    assert_one_line_error(proc, "parameters", "n_feats 4096", "--n-feats")
    Snapshot.take(files, dirs=True).assert_same(before)


@pytest.mark.parametrize("value", ["banana", "-5G", "12Q"])
def test_a_bad_memory_limit_is_one_line(files, value):
    proc = run_cli("compare", "small.png", "small.png", cwd=files, env={"IPT_MS_MEMORY_LIMIT": value})
    assert_one_line_error(proc, "IPT_MS_MEMORY_LIMIT")


def test_a_small_image_is_not_charged_for_a_full_batch_of_tiles():
    """`make demo` restores a 64x64 crop with PyTorch (batch size 64): 9 tiles, not 64 (it was
    refused as needing 23.5 GB)."""
    from ipt_ms.memory import activation_bytes, restore_bytes
    from ipt_ms.spec import IPTSpec

    spec = IPTSpec.pretrain()
    small = restore_bytes(64, 64, spec, scale=2, protocol="official", call_tiles=64)
    assert small < 17 * activation_bytes(spec, 2)  # 9 tiles, padded to a call of 16 at most
    assert restore_bytes(512, 512, spec, scale=2, protocol="official", call_tiles=64) > 64 * activation_bytes(spec, 2)
