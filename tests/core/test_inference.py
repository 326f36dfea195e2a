"""Whole-image restoration in MindSpore: batching, both frameworks, the Python API."""

import numpy as np
import pytest

from ipt_ms.errors import IPTError
from ipt_ms.inference import MindSporePredictor, build_model, load_model, restore_image
from parity.torch_runner import TorchPredictor, build_torch_model


def test_batch_size_does_not_change_the_result(tiny_spec, tiny_state):
    net = build_model(tiny_spec, tiny_state)
    tiles = np.random.default_rng(0).uniform(0, 255, (11, 3, 24, 24)).astype(np.float32)
    whole = MindSporePredictor(net, tiny_spec, "sr_x2", batch_size=64)(tiles)
    split = MindSporePredictor(net, tiny_spec, "sr_x2", batch_size=4)(tiles)
    assert whole.shape == (11, 3, 48, 48)
    np.testing.assert_allclose(whole, split, rtol=0, atol=1e-3)


def test_restore_matches_torch_on_a_photo(tiny_spec, tiny_state, photo_png):
    from ipt_ms.data.imageio import read_image
    from ipt_ms.inference import restore_array

    image = read_image(photo_png)  # 70x85 real photo
    net = build_model(tiny_spec, tiny_state)
    ms_out = restore_image(net, tiny_spec, image, "sr_x3", batch_size=16)
    torch_predictor = TorchPredictor(build_torch_model(tiny_spec, tiny_state), tiny_spec, "sr_x3", 16)
    pt_out = restore_array(torch_predictor, image, scale=3, patch=tiny_spec.patch_size)
    assert ms_out.shape == (210, 255, 3)
    assert np.abs(ms_out - pt_out).max() / np.abs(pt_out).max() < 1e-5


def test_small_images_are_padded_and_cropped_back(tiny_spec, tiny_state):
    net = build_model(tiny_spec, tiny_state)
    for h, w in ((1, 1), (5, 30), (23, 24)):
        image = np.random.default_rng(h).integers(0, 256, (h, w, 3)).astype(np.uint8)
        assert restore_image(net, tiny_spec, image, "sr_x4").shape == (4 * h, 4 * w, 3)


def test_load_model_one_call(tiny_ckpt, tiny_spec):
    net, spec = load_model(str(tiny_ckpt), device="cpu")
    assert spec == tiny_spec
    out = restore_image(net, spec, np.zeros((30, 30, 3), np.uint8), "denoise_30")
    assert out.shape == (30, 30, 3)


def test_restore_rejects_wrong_channels(tiny_spec, tiny_state):
    net = build_model(tiny_spec, tiny_state)
    with pytest.raises(IPTError, match="H x W x 3"):
        restore_image(net, tiny_spec, np.zeros((30, 30), np.uint8), 0)


def test_run_batches_pads_short_chunks_and_keeps_row_order():
    from ipt_ms.inference import run_batches

    calls = []

    def double(chunk):  # a x2 "network" that records the batch it was given
        calls.append(chunk.shape[0])
        return chunk.repeat(2, axis=2).repeat(2, axis=3)

    tiles = np.random.default_rng(0).uniform(0, 255, (7, 3, 4, 4)).astype(np.float32)
    out = run_batches(tiles, double, step=3, scale=2, pad_to=lambda m: 4)
    assert calls == [4, 4, 4]  # 3 + 3 + 1 rows, each padded to 4
    np.testing.assert_array_equal(out, tiles.repeat(2, axis=2).repeat(2, axis=3))
    empty = run_batches(tiles[:0], double, step=3, scale=2)
    assert empty.shape == (0, 3, 8, 8) and calls == [4, 4, 4]  # no tiles: no call, an empty result
