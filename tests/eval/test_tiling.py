"""Tiling protocols against direct implementations, on models whose output is predictable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ipt_ms.errors import IPTError
from ipt_ms.tiling import (
    PROTOCOLS,
    ensemble_forward,
    ensemble_inputs,
    ensemble_undo,
    paper_origins,
    paper_overlap,
    tiled_forward,
    zoo_origins,
)
from tests.chop_reference import forward_chop_reference
from tests.eval.zoo_reference import zoo_chop_reference

SIZES = [(1, 1), (47, 49), (48, 48), (100, 77)]
P = 48


def identity_model(scale):
    """Nearest-neighbour upscaling: every protocol must reproduce it exactly."""
    def model(tiles):
        return np.repeat(np.repeat(tiles, scale, axis=2), scale, axis=3).astype(np.float32)
    return model


def position_model(scale):
    """Output depends on the position inside the tile, so a wrong crop/offset/weight shows."""
    def model(tiles):
        up = np.repeat(np.repeat(tiles, scale, axis=2), scale, axis=3).astype(np.float64)
        side = tiles.shape[2] * scale
        yy, xx = np.mgrid[0:side, 0:side]
        field = 40.0 * np.sin(0.37 * yy + 0.11 * xx) + 0.5 * yy - 0.25 * xx
        channel = np.arange(tiles.shape[1]).reshape(1, -1, 1, 1) * 3.0
        return (0.5 * up + field + channel).astype(np.float32)
    return model


class Batched:
    """A predictor that runs `model` in chunks of `size` and counts the calls."""

    def __init__(self, model, size):
        self.model, self.size, self.calls = model, size, 0

    def __call__(self, tiles):
        self.calls += 1
        return np.concatenate([self.model(tiles[i:i + self.size]) for i in range(0, len(tiles), self.size)])


def _image(h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (3, h, w)).astype(np.float32)


def _padded(image):
    _, h, w = image.shape
    return np.pad(image, ((0, 0), (0, max(0, P - h)), (0, max(0, P - w))), mode="symmetric")


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_identity_model_is_reproduced(protocol, size, scale):
    image = _image(*size)
    out = tiled_forward(image, identity_model(scale), scale=scale, patch=P, protocol=protocol)
    expected = np.repeat(np.repeat(image, scale, axis=1), scale, axis=2)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=2e-7, atol=1e-4)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_official_matches_literal_forward_chop(size, scale):
    image = _image(*size, seed=1)
    model = position_model(scale)
    out = tiled_forward(image, model, scale=scale, patch=P, protocol="official")
    padded = _padded(image)
    ref = forward_chop_reference(lambda t: torch.from_numpy(model(t.numpy())), torch.from_numpy(padded)[None],
                                 P, scale)[0].numpy()
    ref = ref[:, :size[0] * scale, :size[1] * scale]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-4)


@pytest.mark.parametrize("size", SIZES + [(91, 130), (84, 84)])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_zoo_matches_literal_chop_new(size, scale):
    image = _image(*size, seed=2)
    model = position_model(scale)
    out = tiled_forward(image, model, scale=scale, patch=P, protocol="zoo")
    ref = zoo_chop_reference(model, _padded(image), P, scale)[:, :size[0] * scale, :size[1] * scale]
    # the zoo keeps exactly one tile per pixel: no averaging, so the values are bit-identical
    np.testing.assert_array_equal(out, ref.astype(np.float32))


def _paper_direct(image, model, scale, patch):
    """Per output pixel: weighted mean over the tiles covering it, weights written out directly."""
    _, h, w = image.shape
    fade = paper_overlap(patch) * scale
    stride = patch - paper_overlap(patch)

    def starts(n):
        s = list(range(0, n - patch + 1, stride))
        return s if s[-1] == n - patch else s + [n - patch]

    def weight(t):  # distance-to-edge ramp of one tile, in output pixels
        return min(1.0, (t + 0.5) / fade, (patch * scale - t - 0.5) / fade)

    tiles = {(r, c): model(image[None, :, r:r + patch, c:c + patch])[0].astype(np.float64)
             for r in starts(h) for c in starts(w)}
    out = np.zeros((3, h * scale, w * scale))
    for Y in range(h * scale):
        for X in range(w * scale):
            num, den = np.zeros(3), 0.0
            for (r, c), tile in tiles.items():
                dy, dx = Y - r * scale, X - c * scale
                if 0 <= dy < patch * scale and 0 <= dx < patch * scale:
                    wgt = weight(dy) * weight(dx)
                    num += wgt * tile[:, dy, dx]
                    den += wgt
            out[:, Y, X] = num / den
    return out


@pytest.mark.parametrize("size", [(20, 27), (31, 50)])
@pytest.mark.parametrize("scale", [1, 2])
def test_paper_matches_direct_blend(size, scale):
    patch = 12  # small, so the per-pixel loop stays quick; overlap 2 (10 px at 48)
    image = _image(*size, seed=3)
    model = position_model(scale)
    out = tiled_forward(image, model, scale=scale, patch=patch, protocol="paper")
    np.testing.assert_allclose(out, _paper_direct(image, model, scale, patch), rtol=1e-5, atol=1e-3)


def test_paper_geometry_at_48():
    assert paper_overlap(48) == 10
    rows = sorted({r for r, _ in paper_origins(100, 48, 48)})
    assert rows == [0, 38, 52]  # stride 38, last tile flush with the border
    assert paper_origins(48, 48, 48) == [(0, 0)]


def test_zoo_geometry_at_48():
    rows = sorted({r for r, _ in zoo_origins(120, 48, 48)})
    assert rows == [0, 36, 72]  # stride 36 (h_cut 0 here: the bottom strip repeats the last row)
    with pytest.raises(IPTError, match="divisible by 8"):
        zoo_origins(60, 60, 20)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_batching_does_not_change_results(protocol):
    image = _image(100, 77, seed=4)
    model = position_model(2)
    outs = [tiled_forward(image, Batched(model, k), scale=2, patch=P, protocol=protocol) for k in (1, 7, 64, 1000)]
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


def test_ensemble_inputs_follow_official_order():
    x = _image(5, 7)
    v, h, t = (lambda a: a[:, :, ::-1]), (lambda a: a[:, ::-1, :]), (lambda a: a.transpose(0, 2, 1))
    expected = [x, v(x), h(x), h(v(x)), t(x), t(v(x)), t(h(x)), t(h(v(x)))]
    for got, want in zip(ensemble_inputs(x), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    for i, variant in enumerate(ensemble_inputs(x)):
        np.testing.assert_array_equal(ensemble_undo(variant, i), x)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_self_ensemble_averages_the_eight_undone_outputs(protocol):
    image = _image(53, 61, seed=5)
    model = position_model(2)

    def run(x):
        return tiled_forward(np.ascontiguousarray(x), model, scale=2, patch=P, protocol=protocol).astype(np.float64)

    # direct: transform, restore, invert the transform explicitly
    inverses = [lambda y: y, lambda y: y[:, :, ::-1], lambda y: y[:, ::-1, :], lambda y: y[:, ::-1, ::-1]]
    direct = [inv(run(fwd)) for fwd, inv in zip(
        [image, image[:, :, ::-1], image[:, ::-1, :], image[:, ::-1, ::-1]], inverses)]
    direct += [inv(run(fwd.transpose(0, 2, 1)).transpose(0, 2, 1)) for fwd, inv in zip(
        [image, image[:, :, ::-1], image[:, ::-1, :], image[:, ::-1, ::-1]], inverses)]
    out = tiled_forward(image, model, scale=2, patch=P, protocol=protocol, self_ensemble=True)
    np.testing.assert_allclose(out, np.mean(direct, axis=0), rtol=1e-6, atol=1e-4)
    # an equivariant model gives back the plain result
    plain = tiled_forward(image, identity_model(2), scale=2, patch=P, protocol=protocol)
    ens = ensemble_forward(image, lambda x: tiled_forward(x, identity_model(2), scale=2, patch=P, protocol=protocol))
    np.testing.assert_allclose(ens, plain, rtol=1e-6, atol=1e-4)


def test_wrong_predictor_shape_and_protocol_are_errors():
    with pytest.raises(IPTError, match="unknown tiling protocol"):
        tiled_forward(_image(48, 48), identity_model(2), scale=2, patch=P, protocol="nope")
    with pytest.raises(IPTError, match="predictor returned"):
        tiled_forward(_image(48, 48), identity_model(3), scale=2, patch=P, protocol="zoo")
