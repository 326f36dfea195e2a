"""EDSR's patch augmentation: the same flips and transpose for every patch of a sample."""

from __future__ import annotations

import numpy as np


def augment(img: np.ndarray, hflip: bool, vflip: bool, rot90: bool) -> np.ndarray:
    """EDSR's ``augment``: horizontal flip, vertical flip, transpose (H <-> W)."""
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    if rot90:
        img = img.transpose(1, 0, 2)
    return img
