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
    """Tile offsets of an unfold with kernel P and stride P/4 along one axis."""
    return list(range(0, length - geo.patch + 1, geo.stride))


def official_origins(height: int, width: int, patch: int) -> list[Origin]:
    """Every distinct input tile the official protocol runs, as (top, left) offsets."""
    geo = _ChopGeometry(patch, 1)
    rows, cols = _positions(height, geo), _positions(width, geo)
    origins = {(r, c) for r in rows for c in cols}
    origins |= {(height - patch, c) for c in cols}  # bottom strip
    origins |= {(r, width - patch) for r in rows}  # right strip
    origins.add((height - patch, width - patch))  # bottom-right corner
    return sorted(origins)


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
    y_corner = outputs[(height - P, width - P)]
    keep_h, skip_h = int((P - h_cut) / 2 * s), int((P - h_cut) / 2 * s + 0.5)
    keep_w, skip_w = int((P - w_cut) / 2 * s), int((P - w_cut) / 2 * s + 0.5)
    y = np.concatenate([y[:, :y.shape[1] - keep_h, :], y_bottom[:, skip_h:, :]], axis=1)
    right = np.concatenate([y_right[:, :y_right.shape[1] - keep_h, :], y_corner[:, skip_h:, :]], axis=1)
    return np.concatenate([y[:, :, :y.shape[2] - keep_w], right[:, :, skip_w:]], axis=2)


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
                  protocol: str = "official") -> np.ndarray:
    """Restore a (C, H, W) float32 image of any size with `predict`; returns (C, H*s, W*s)."""
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
