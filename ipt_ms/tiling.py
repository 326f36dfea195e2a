"""Whole-image inference from fixed-size patches (the model only takes patch_size inputs).

Framework-free: a *predictor* maps a numpy batch of input tiles (N, C, P, P) to output
tiles (N, C, P*s, P*s); MindSpore, the PyTorch twin and ONNX Runtime all plug in the
same way, so every framework sees exactly the same tiles.

Protocols (selectable by name, see `PROTOCOLS`):

``official``
    The official PyTorch test-time `forward_chop` (huawei-noah/Pretrained-IPT
    `model/__init__.py`): P-pixel tiles at stride P/4 (12 for P = 48); each tile's
    central (P/2)*s window is averaged over overlaps; the top and left P-pixel strips, the
    bottom and right remainder strips and the bottom-right corner are computed as separate
    strips and concatenated in exactly the official order. Identical tiles that the
    official code runs more than once (the top/left strips repeat the first row/column of
    the main grid) are run once here; the model is per-sample, so the result is the same.

``zoo``
    The official MindSpore test-time chop (mindspore-ai/models research/cv/IPT,
    ``IPT_post.forward``, ``--chop_new``): tiles at stride P - P/4 (36 for P = 48); every
    output pixel comes from exactly one tile, the one whose central (P - P/4)*s window
    holds it (outer borders from the first/last tile), **no averaging**; the bottom/right
    remainder strips and corner are joined as in ``official``. One quirk is kept: the top
    border (P/8*s rows) comes from tile (0, 0) up to column P*s, because chop_new pastes
    the left strip after the top strip. The zoo code casts tiles
    to float16 on Ascend; here everything stays float32 (same geometry, not the same
    rounding).

``paper``
    What the paper states ("48x48 patches with a 10-pixel overlap"): tiles at stride
    P - 10 (overlap scaled with P for other patch sizes), the last tile flush with the
    border; overlaps are blended with a linear cross-fade. The paper does not say how it
    blends, so this protocol is ours, not a reproduction.

Self-ensemble x8 (``self_ensemble=True``, `ensemble_forward`) wraps any protocol as the
official ``forward_x8`` does: 8 flips/transposes of the whole image, each tiled and
restored, undone and averaged.

Images smaller than P on either side are padded (half-sample symmetric) to P and the
output is cropped back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ipt_ms.errors import IPTError

Predict = Callable[[np.ndarray], np.ndarray]
Origin = tuple[int, int]


@dataclass(frozen=True)
class _ChopGeometry:
    """Sizes of the official forward_chop for patch P and scale s (input and output pixels)."""

    patch: int
    scale: int

    def __post_init__(self) -> None:
        if self.patch % 4:
            raise IPTError(f"the official tiling needs a patch size divisible by 4, got {self.patch}")

    @property
    def shave(self) -> int:  # overlap removed around each tile's centre, in input pixels
        return self.patch // 2

    @property
    def stride(self) -> int:  # tile stride in input pixels
        return self.shave // 2

    @property
    def out_stride(self) -> int:
        return int(self.shave / 2 * self.scale)

    @property
    def crop(self) -> int:  # output pixels dropped on each side of a tile before averaging
        return int(self.shave / 2 * self.scale)


def _positions(length: int, geo: _ChopGeometry) -> list[int]:
    """Tile offsets of an unfold with kernel P and the geometry's stride along one axis."""
    return list(range(0, length - geo.patch + 1, geo.stride))


def _grid_and_strips(height: int, width: int, patch: int, rows: list[int], cols: list[int]) -> list[Origin]:
    """Main grid plus the bottom strip, right strip and corner that both official chops run."""
    origins = {(r, c) for r in rows for c in cols}
    origins |= {(height - patch, c) for c in cols}  # bottom strip
    origins |= {(r, width - patch) for r in rows}  # right strip
    origins.add((height - patch, width - patch))  # bottom-right corner
    return sorted(origins)


def official_origins(height: int, width: int, patch: int) -> list[Origin]:
    """Every distinct input tile the official protocol runs, as (top, left) offsets."""
    geo = _ChopGeometry(patch, 1)
    return _grid_and_strips(height, width, patch, _positions(height, geo), _positions(width, geo))


def _strip(outputs: dict[Origin, np.ndarray], fixed: int, positions: list[int], span: int,
           geo: _ChopGeometry, horizontal: bool) -> np.ndarray:
    """Official cut_h (horizontal strip at input row `fixed`) / cut_w (vertical, at column `fixed`).

    Tiles are summed into the strip, then the strip's interior is replaced by the average
    of each tile's central window along the strip. `span` is the strip length in input
    pixels (the main-grid extent, i.e. the image side minus its remainder).
    """
    s, P, crop, ostr = geo.scale, geo.patch, geo.crop, geo.out_stride
    tiles = [outputs[(fixed, p) if horizontal else (p, fixed)] for p in positions]
    if not horizontal:  # work on the transposed problem so one code path serves both
        tiles = [t.swapaxes(1, 2) for t in tiles]
    channels = tiles[0].shape[0]
    strip = np.zeros((channels, P * s, span * s), np.float32)
    inner = np.zeros((channels, P * s, (span - geo.shave) * s), np.float32)
    count = np.zeros((1, 1, inner.shape[2]), np.float32)
    width = P * s - 2 * crop
    for j, tile in enumerate(tiles):
        strip[:, :, j * ostr:j * ostr + P * s] += tile
        inner[:, :, j * ostr:j * ostr + width] += tile[:, :, crop:P * s - crop]
        count[:, :, j * ostr:j * ostr + width] += 1
    strip[:, :, crop:span * s - crop] = inner / count
    return strip if horizontal else strip.swapaxes(1, 2)


def official_assemble(outputs: dict[Origin, np.ndarray], height: int, width: int, patch: int,
                      scale: int) -> np.ndarray:
    """Combine tile outputs exactly as the official forward_chop does; returns (C, H*s, W*s)."""
    geo = _ChopGeometry(patch, scale)
    s, P, crop, ostr = scale, patch, geo.crop, geo.out_stride
    h_cut = (height - P) % geo.stride
    w_cut = (width - P) % geo.stride
    rows, cols = _positions(height, geo), _positions(width, geo)
    h_main, w_main = height - h_cut, width - w_cut
    channels = next(iter(outputs.values())).shape[0]

    # main grid: overlapping sum, then the top/left strips, then the averaged centres
    y = np.zeros((channels, h_main * s, w_main * s), np.float32)
    inner = np.zeros((channels, (h_main - geo.shave) * s, (w_main - geo.shave) * s), np.float32)
    count = np.zeros((1,) + inner.shape[1:], np.float32)
    window = P * s - 2 * crop
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            tile = outputs[(r, c)]
            y[:, i * ostr:i * ostr + P * s, j * ostr:j * ostr + P * s] += tile
            inner[:, i * ostr:i * ostr + window, j * ostr:j * ostr + window] += \
                tile[:, crop:P * s - crop, crop:P * s - crop]
            count[:, i * ostr:i * ostr + window, j * ostr:j * ostr + window] += 1
    y[:, :P * s, :] = _strip(outputs, 0, cols, w_main, geo, horizontal=True)
    y[:, :, :P * s] = _strip(outputs, 0, rows, h_main, geo, horizontal=False)
    y[:, crop:h_main * s - crop, crop:w_main * s - crop] = inner / count

    # bottom and right remainders, concatenated at the official (rounded) seams
    y_bottom = _strip(outputs, height - P, cols, w_main, geo, horizontal=True)
    y_right = _strip(outputs, width - P, rows, h_main, geo, horizontal=False)
    return _join_remainders(y, y_bottom, y_right, outputs[(height - P, width - P)], h_cut, w_cut, P, s)


def _join_remainders(y: np.ndarray, y_bottom: np.ndarray, y_right: np.ndarray, y_corner: np.ndarray,
                     h_cut: int, w_cut: int, patch: int, scale: int) -> np.ndarray:
    """Append the bottom strip, right strip and corner tile to the main grid's output.

    Both official chops (PyTorch forward_chop and MindSpore chop_new) keep the main grid
    up to (P - cut)/2 input pixels from its end and take the rest from the strip, with
    the rounding of the original code (the two seams differ by one pixel when (P - cut) * s
    is odd).
    """
    P, s = patch, scale
    keep_h, skip_h = int((P - h_cut) / 2 * s), int((P - h_cut) / 2 * s + 0.5)
    keep_w, skip_w = int((P - w_cut) / 2 * s), int((P - w_cut) / 2 * s + 0.5)
    y = np.concatenate([y[:, :y.shape[1] - keep_h, :], y_bottom[:, skip_h:, :]], axis=1)
    right = np.concatenate([y_right[:, :y_right.shape[1] - keep_h, :], y_corner[:, skip_h:, :]], axis=1)
    return np.concatenate([y[:, :, :y.shape[2] - keep_w], right[:, :, skip_w:]], axis=2)


# ----------------------------------------------------------------------------- zoo


@dataclass(frozen=True)
class _ZooGeometry(_ChopGeometry):
    """Sizes of the MindSpore model-zoo chop (`IPT_post.forward`, --chop_new) for patch P, scale s.

    Same roles as the official geometry, other sizes: tiles overlap by P/4 (`shave`), the
    stride is P - P/4 (36 for P = 48) and each tile gives up P/8*s output pixels per side
    (`crop`, inherited).
    """

    def __post_init__(self) -> None:
        if self.patch % 8:
            raise IPTError(f"the zoo tiling needs a patch size divisible by 8, got {self.patch}")

    @property
    def shave(self) -> int:
        return self.patch // 4

    @property
    def stride(self) -> int:
        return self.patch - self.shave

    @property
    def out_stride(self) -> int:
        return self.stride * self.scale


def zoo_origins(height: int, width: int, patch: int) -> list[Origin]:
    """Input tiles of the zoo protocol: stride P - P/4 grid, bottom/right strips, corner."""
    geo = _ZooGeometry(patch, 1)
    return _grid_and_strips(height, width, patch, _positions(height, geo), _positions(width, geo))


def _zoo_spans(count: int, length: int, geo: _ZooGeometry) -> list[tuple[int, int]]:
    """Output range each of `count` tiles along an axis supplies: its central window, the
    first and last tile also the outer border. No pixel comes from two tiles."""
    starts = [0] + [geo.crop + j * geo.out_stride for j in range(1, count)]
    return list(zip(starts, starts[1:] + [length]))


def _zoo_mosaic(outputs: dict[Origin, np.ndarray], rows: list[int], cols: list[int], size: tuple[int, int],
                geo: _ZooGeometry) -> np.ndarray:
    """Each output pixel copied from the one tile whose central window holds it."""
    ostride = geo.out_stride
    channels = next(iter(outputs.values())).shape[0]
    out = np.empty((channels,) + size, np.float32)
    for i, (r, (y0, y1)) in enumerate(zip(rows, _zoo_spans(len(rows), size[0], geo))):
        for j, (c, (x0, x1)) in enumerate(zip(cols, _zoo_spans(len(cols), size[1], geo))):
            ty, tx = i * ostride, j * ostride
            out[:, y0:y1, x0:x1] = outputs[(r, c)][:, y0 - ty:y1 - ty, x0 - tx:x1 - tx]
    return out


def zoo_assemble(outputs: dict[Origin, np.ndarray], height: int, width: int, patch: int,
                 scale: int) -> np.ndarray:
    """Combine tiles as the official MindSpore chop_new: no averaging, edge strips as official."""
    geo = _ZooGeometry(patch, scale)
    P, s = patch, scale
    rows, cols = _positions(height, geo), _positions(width, geo)
    h_cut, w_cut = (height - P) % geo.stride, (width - P) % geo.stride
    h_main, w_main = (height - h_cut) * s, (width - w_cut) * s
    y = _zoo_mosaic(outputs, rows, cols, (h_main, w_main), geo)
    # chop_new writes the left strip over the first P*s columns *after* the top strip, and the
    # left strip's top rows come from tile (0, 0): so does the top border up to column P*s
    y[:, :geo.crop, :P * s] = outputs[(0, 0)][:, :geo.crop, :P * s]
    y_bottom = _zoo_mosaic(outputs, [height - P], cols, (P * s, w_main), geo)
    y_right = _zoo_mosaic(outputs, rows, [width - P], (h_main, P * s), geo)
    return _join_remainders(y, y_bottom, y_right, outputs[(height - P, width - P)], h_cut, w_cut, P, s)


# ----------------------------------------------------------------------------- paper


def paper_overlap(patch: int) -> int:
    """Overlap of neighbouring tiles in the paper protocol: 10 px at P = 48, scaled with P."""
    return max(1, round(patch * 10 / 48))


def _paper_positions(length: int, patch: int) -> list[int]:
    stride = max(1, patch - paper_overlap(patch))
    positions = list(range(0, length - patch + 1, stride))
    if positions[-1] + patch < length:  # last tile flush with the border (overlaps a bit more)
        positions.append(length - patch)
    return positions


def paper_origins(height: int, width: int, patch: int) -> list[Origin]:
    """Input tiles of the paper protocol: P-pixel tiles overlapping by `paper_overlap(P)`."""
    return [(r, c) for r in _paper_positions(height, patch) for c in _paper_positions(width, patch)]


def _ramp(length: int, fade: int) -> np.ndarray:
    """1-D blending weight of a tile: rises linearly over `fade` pixels at each end, never 0."""
    x = np.arange(length, dtype=np.float64) + 0.5
    return np.minimum(1.0, np.minimum(x, length - x) / fade)


def paper_assemble(outputs: dict[Origin, np.ndarray], height: int, width: int, patch: int,
                   scale: int) -> np.ndarray:
    """Weighted average of the tiles: linear cross-fade across each overlap (weights sum to 1
    there); where one tile covers a pixel it is taken as is."""
    side = patch * scale
    ramp = _ramp(side, paper_overlap(patch) * scale)
    weight = np.outer(ramp, ramp)
    channels = next(iter(outputs.values())).shape[0]
    acc = np.zeros((channels, height * scale, width * scale), np.float64)
    total = np.zeros((height * scale, width * scale), np.float64)
    for (r, c), tile in outputs.items():
        acc[:, r * scale:r * scale + side, c * scale:c * scale + side] += weight * tile
        total[r * scale:r * scale + side, c * scale:c * scale + side] += weight
    return (acc / total).astype(np.float32)


@dataclass(frozen=True)
class Protocol:
    """A tiling protocol: which tiles to run and how to combine their outputs."""

    name: str
    origins: Callable[[int, int, int], list[Origin]]
    assemble: Callable[[dict[Origin, np.ndarray], int, int, int, int], np.ndarray]
    description: str


PROTOCOLS: dict[str, Protocol] = {
    "official": Protocol("official", official_origins, official_assemble,
                         "official PyTorch forward_chop: stride P/4, central windows averaged, edge strips"),
    "zoo": Protocol("zoo", zoo_origins, zoo_assemble,
                    "official MindSpore chop_new: stride P - P/4, central windows tiled without averaging"),
    "paper": Protocol("paper", paper_origins, paper_assemble,
                      "paper: P-px tiles overlapping by 10 px (at P = 48), linear cross-fade"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise IPTError(f"unknown tiling protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def pad_to_patch(image: np.ndarray, patch: int) -> np.ndarray:
    """Pad a (C, H, W) image at the bottom/right (half-sample symmetric) so both sides >= patch."""
    _, h, w = image.shape
    pad_h, pad_w = max(0, patch - h), max(0, patch - w)
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="symmetric")


def tiled_forward(image: np.ndarray, predict: Predict, *, scale: int, patch: int,
                  protocol: str = "official", self_ensemble: bool = False) -> np.ndarray:
    """Restore a (C, H, W) float32 image of any size with `predict`; returns (C, H*s, W*s).

    `self_ensemble` runs the protocol on the 8 flips/transposes of the whole image and
    averages the undone outputs (`ensemble_forward`).
    """
    if self_ensemble:
        return ensemble_forward(image, lambda x: tiled_forward(x, predict, scale=scale, patch=patch,
                                                               protocol=protocol))
    if image.ndim != 3:
        raise IPTError(f"expected a (C, H, W) image, got shape {image.shape}")
    proto = get_protocol(protocol)
    _, h, w = image.shape
    padded = pad_to_patch(np.ascontiguousarray(image, dtype=np.float32), patch)
    ph, pw = padded.shape[1:]
    origins = proto.origins(ph, pw, patch)
    tiles = np.stack([padded[:, r:r + patch, c:c + patch] for r, c in origins])
    results = predict(tiles)
    expected = (len(origins), image.shape[0], patch * scale, patch * scale)
    if results.shape != expected:
        raise IPTError(f"predictor returned {results.shape}, expected {expected}")
    out = proto.assemble(dict(zip(origins, results)), ph, pw, patch, scale)
    return out[:, :h * scale, :w * scale]


# ----------------------------------------------------------------------------- self-ensemble

_FLIPS = {"v": lambda x: x[:, :, ::-1], "h": lambda x: x[:, ::-1, :], "t": lambda x: x.transpose(0, 2, 1)}


def ensemble_inputs(image: np.ndarray) -> list[np.ndarray]:
    """The 8 inputs of the official forward_x8, in its order [x, v, h, hv, t, tv, th, thv]:
    each of flip-W ('v'), flip-H ('h') and transpose ('t') applied to every entry so far."""
    variants = [image]
    for op in "vht":
        variants += [_FLIPS[op](v) for v in variants]
    return [np.ascontiguousarray(v) for v in variants]


def ensemble_undo(output: np.ndarray, index: int) -> np.ndarray:
    """Map the output of variant `index` back to the original orientation (official order:
    transpose if index > 3, then flip H if index % 4 > 1, then flip W if index is odd)."""
    if index > 3:
        output = _FLIPS["t"](output)
    if index % 4 > 1:
        output = _FLIPS["h"](output)
    if index % 2 == 1:
        output = _FLIPS["v"](output)
    return output


def ensemble_forward(image: np.ndarray, forward: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Self-ensemble x8 over any whole-image `forward` (C, H, W) -> (C, H*s, W*s): mean of the
    8 undone outputs (accumulated in float64, returned as float32)."""
    if image.ndim != 3:
        raise IPTError(f"expected a (C, H, W) image, got shape {image.shape}")
    total = None
    for index, variant in enumerate(ensemble_inputs(image)):
        out = ensemble_undo(forward(variant), index).astype(np.float64)
        total = out if total is None else total + out
    return (total / 8.0).astype(np.float32)
