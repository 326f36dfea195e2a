"""The official forward_chop protocol against a literal torch fold/unfold re-statement."""

import numpy as np
import pytest
import torch

from ipt_ms.errors import IPTError
from ipt_ms.tiling import official_origins, tiled_forward
from tests.chop_reference import forward_chop_reference


def position_model(scale: int, patch: int):
    """Output depends on tile content and on the position inside the tile, so every averaging
    and every seam of the protocol shows up in the result."""
    size = patch * scale
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    bias = torch.tensor((yy * 0.37 + xx * 0.011 + (yy * xx % 7) * 0.5).astype(np.float32))

    def model(tiles):
        tiles = torch.as_tensor(tiles)
        up = tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        return up * 1.5 + bias + tiles.mean(dim=(1, 2, 3), keepdim=True)

    return model


@pytest.mark.parametrize("patch", [48, 24])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(48, 48), (49, 61), (100, 77), (95, 97), (120, 53)])
def test_official_matches_literal_forward_chop(patch, scale, size):
    h, w = size
    if min(h, w) < patch:
        pytest.skip("the official code needs inputs >= patch")
    x = np.random.default_rng(h * w + scale).uniform(0, 255, (3, h, w)).astype(np.float32)
    model = position_model(scale, patch)
    reference = forward_chop_reference(model, torch.from_numpy(x)[None], patch, scale)[0].numpy()
    ours = tiled_forward(x, lambda t: model(t).numpy(), scale=scale, patch=patch)
    assert ours.shape == reference.shape == (3, h * scale, w * scale)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=2e-4)


@pytest.mark.parametrize("size", [(1, 1), (47, 49), (48, 48), (100, 77), (5, 130)])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_identity_like_model_reproduces_the_upscaled_image(size, scale):
    """A model that upsamples by pixel repetition must give exactly the repeated image back."""
    h, w = size
    x = np.random.default_rng(0).uniform(0, 255, (3, h, w)).astype(np.float32)
    out = tiled_forward(x, lambda t: t.repeat(scale, 2).repeat(scale, 3), scale=scale, patch=48)
    np.testing.assert_allclose(out, x.repeat(scale, 1).repeat(scale, 2), rtol=0, atol=1e-4)


def test_tiles_are_the_official_ones():
    origins = official_origins(100, 77, 48)
    rows = {r for r, _ in origins}
    cols = {c for _, c in origins}
    assert rows == {0, 12, 24, 36, 48, 52} and cols == {0, 12, 24, 29}
    assert (52, 29) in origins and len(origins) == len(set(origins))


def test_patch_size_must_suit_the_protocol():
    with pytest.raises(IPTError, match="divisible by 4"):
        tiled_forward(np.zeros((3, 30, 30), np.float32), lambda t: t, scale=1, patch=30)
