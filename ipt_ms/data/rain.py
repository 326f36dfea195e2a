"""Rain streaks: real streak layers (as IPT pre-training uses) and procedural synthesis.

Model (JORDER, Yang et al. 2017): O = B + S, clipped to [0, 255]. S is grayscale and is
broadcast over RGB.

* :class:`StreakLayers` -- the real ``rainstreak-*.png`` layers of RainTrainL. IPT's
  pre-training adds a random crop of one of them to a clean patch; so do we.
* :func:`procedural_streaks` -- for when no streak files exist: sparse random seeds
  (thresholded uniform noise) -> motion blur along a random near-vertical direction and
  length -> scale -> S. Preset "light" is Rain100L-like (one layer, one direction, thin
  sparse streaks); "heavy" is Rain100H-like (several layers in different directions,
  denser, longer, brighter).
* :class:`ProceduralStreakBank` -- a fixed, seeded set of procedural layers from which
  training patches crop, like the real layers (synthesising a fresh layer per 48x48 patch
  would dominate the data-loading time).

The random draws (seed positions, lengths, angles, intensities) are bit-identical on every
machine; the streak filtering runs in OpenCV float32, whose SIMD paths may differ in the
last bits between CPU types (far below one grey level).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipt_ms.data.blur import linear_kernel
from ipt_ms.data.imageio import ImageReadError, list_images, read_image
from ipt_ms.data.seeding import rng_from
from ipt_ms.errors import IPTError

__all__ = [
    "RAIN_PRESETS",
    "RainPreset",
    "ProceduralStreakBank",
    "StreakLayers",
    "add_rain",
    "crop_streak",
    "procedural_streaks",
    "read_streak",
    "streak_source",
]


@dataclass(frozen=True)
class RainPreset:
    """Parameters of :func:`procedural_streaks` (angles in degrees from vertical)."""

    layers: tuple[int, int]  # inclusive range of the number of streak layers
    density: tuple[float, float]  # fraction of pixels that seed a streak
    length: tuple[int, int]  # streak length in pixels (inclusive range)
    angle: float  # |main direction| from vertical is at most this
    layer_spread: float  # extra per-layer deviation from the main direction
    width: tuple[float, float]  # Gaussian sigma that thickens the seeds (0 = 1 pixel)
    intensity: tuple[float, float]  # peak streak value on [0, 255]


RAIN_PRESETS: dict[str, RainPreset] = {
    "light": RainPreset(
        layers=(1, 1),
        density=(0.002, 0.005),
        length=(12, 30),
        angle=15.0,
        layer_spread=0.0,
        width=(0.0, 0.5),
        intensity=(60.0, 110.0),
    ),
    "heavy": RainPreset(
        layers=(3, 5),
        density=(0.0008, 0.002),
        length=(20, 45),
        angle=20.0,
        layer_spread=20.0,
        width=(0.3, 0.8),
        intensity=(70.0, 120.0),
    ),
}


def _preset(preset: str | RainPreset) -> RainPreset:
    if isinstance(preset, RainPreset):
        return preset
    if preset not in RAIN_PRESETS:
        raise IPTError(f"unknown rain preset {preset!r}: choose one of {', '.join(RAIN_PRESETS)}")
    return RAIN_PRESETS[preset]


def _streak_layer(h: int, w: int, rng: np.random.Generator, p: RainPreset, angle: float) -> np.ndarray:
    import cv2

    length = int(rng.integers(p.length[0], p.length[1] + 1))
    kernel = linear_kernel(length, 90.0 + angle)  # 90 deg = vertical in fspecial convention
    margin = kernel.shape[0] // 2 + 2
    hh, ww = h + 2 * margin, w + 2 * margin
    density = p.density[0] + (p.density[1] - p.density[0]) * rng.random()
    # Threshold uniform noise: a pixel seeds a streak with probability `density`; seed
    # brightness varies so streaks differ in strength.
    seeds = (rng.random((hh, ww), dtype=np.float32) < density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, size=(hh, ww)).astype(np.float32)
    width = p.width[0] + (p.width[1] - p.width[0]) * rng.random()
    if width > 0.05:
        seeds = cv2.GaussianBlur(seeds, (0, 0), sigmaX=width, borderType=cv2.BORDER_REFLECT)
        seeds /= max(float(seeds.max()), 1e-6)
    streak = cv2.filter2D(seeds, -1, kernel[::-1, ::-1].astype(np.float32), borderType=cv2.BORDER_REFLECT)
    # The kernel sums to 1: a lone seed becomes a line of value ~seed/length; undo that.
    streak *= length
    intensity = p.intensity[0] + (p.intensity[1] - p.intensity[0]) * rng.random()
    return streak[margin : margin + h, margin : margin + w] * intensity


def procedural_streaks(
    h: int, w: int, rng: np.random.Generator, preset: str | RainPreset = "light"
) -> np.ndarray:
    """A synthetic HxW streak layer S (float32, [0, 255]) drawn from ``rng``."""
    p = _preset(preset)
    n_layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    main = (2 * rng.random() - 1) * p.angle
    out = np.zeros((h, w), dtype=np.float32)
    for _ in range(n_layers):
        angle = main + (2 * rng.random() - 1) * p.layer_spread
        out += _streak_layer(h, w, rng, p, angle)
    return np.clip(out, 0, 255, out=out)


def add_rain(img: np.ndarray, streak: np.ndarray) -> np.ndarray:
    """O = clip(B + S, 0, 255) as float32, with a grayscale S broadcast over channels."""
    streak = np.asarray(streak, dtype=np.float32)
    if streak.ndim == 2 and img.ndim == 3:
        streak = streak[:, :, None]
    if streak.shape[:2] != img.shape[:2]:
        raise IPTError(f"rain streak layer {streak.shape[:2]} does not match image {img.shape[:2]}")
    return np.clip(img.astype(np.float32) + streak, 0.0, 255.0)


def crop_streak(layer: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random HxW crop of a streak layer; smaller layers are first extended by
    symmetric reflection (streaks are statistically stationary)."""
    lh, lw = layer.shape[:2]
    if lh < h or lw < w:
        reps_h = max(0, h - lh)
        reps_w = max(0, w - lw)
        layer = np.pad(layer, ((0, reps_h), (0, reps_w)), mode="symmetric")
        lh, lw = layer.shape[:2]
    y = int(rng.integers(lh - h + 1))
    x = int(rng.integers(lw - w + 1))
    return layer[y : y + h, x : x + w]


def read_streak(path: os.PathLike | str) -> np.ndarray:
    """A streak layer file as HxW float32 (RGB files: the mean of the channels)."""
    rgb = read_image(path)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]):
        return rgb[:, :, 0].astype(np.float32)
    return rgb.astype(np.float32).mean(axis=2)


_STREAK_RE = re.compile(r"^rainstreak-?(\d+)$", re.IGNORECASE)


class StreakLayers:
    """The real streak layers ``rainstreak-*.png`` of a RainTrainL-style folder.

    Files are read lazily (or all at once by ``warm_up``) and kept in memory; the 200
    layers of RainTrainL take ~30 MB.
    """

    def __init__(self, folder: os.PathLike | str):
        self.folder = Path(folder)
        files = [
            p for p in list_images(self.folder, recursive=False, what="rain streak folder")
            if _STREAK_RE.match(p.stem)
        ]
        if not files:
            raise IPTError(
                f"rain streak folder {self.folder} has no rainstreak-N.png files "
                "(expected the RainTrainL layout: rainstreak-1.png ... rainstreak-200.png)"
            )
        files.sort(key=lambda p: int(_STREAK_RE.match(p.stem).group(1)))
        self.paths = files
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def warm_up(self) -> None:
        """Read every layer now (worker processes then receive them with the source)."""
        for i in range(len(self.paths)):
            self.layer(i)

    def layer(self, i: int) -> np.ndarray:
        if i not in self._cache:
            try:
                self._cache[i] = read_streak(self.paths[i])
            except ImageReadError as err:
                raise IPTError(f"rain streak layer unreadable: {err}") from None
        return self._cache[i]

    def sample(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """A random HxW crop of a random layer."""
        return crop_streak(self.layer(int(rng.integers(len(self.paths)))), h, w, rng)


class ProceduralStreakBank:
    """``count`` procedural layers of ``size`` x ``size``, generated lazily from ``seed``.

    Layer i depends only on (seed, preset, size, i), so every worker process builds the
    same bank. Training patches take random crops of random layers, like
    :class:`StreakLayers`.
    """

    def __init__(self, preset: str | RainPreset = "light", seed: int = 0, count: int = 32, size: int = 256):
        self.preset = _preset(preset)
        self.preset_name = preset if isinstance(preset, str) else "custom"
        self.seed = int(seed)
        self.count = int(count)
        self.size = int(size)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.count

    def warm_up(self) -> None:
        """Build every layer now (~10 ms each) instead of lazily during training."""
        for i in range(self.count):
            self.layer(i)

    def layer(self, i: int) -> np.ndarray:
        if i not in self._cache:
            rng = rng_from(self.seed, "rain-bank", self.preset_name, self.size, i)
            self._cache[i] = procedural_streaks(self.size, self.size, rng, self.preset)
        return self._cache[i]

    def sample(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        return crop_streak(self.layer(int(rng.integers(self.count))), h, w, rng)


def streak_source(
    streaks: os.PathLike | str | None, preset: str = "light", seed: int = 0
) -> StreakLayers | ProceduralStreakBank:
    """Real layers from a folder if given, else a procedural bank of the preset."""
    if streaks is not None:
        return StreakLayers(streaks)
    return ProceduralStreakBank(preset=preset, seed=seed)
