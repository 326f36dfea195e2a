"""Shared fixtures for the data tests: small real photos (scikit-image) and folders."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """Three natural RGB photos bundled with scikit-image (no download)."""
    import skimage.data as skd

    return [skd.astronaut(), skd.chelsea(), skd.coffee()]


@pytest.fixture(scope="session")
def photo(photos) -> np.ndarray:
    """A 120x160 crop of the astronaut: texture, edges and saturated regions."""
    return np.ascontiguousarray(photos[0][100:220, 150:310])


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, photos):
    """A nested folder of 10 JPEG/PNG crops (ImageNet-like tree)."""
    from ipt_ms.data.imageio import write_image

    root = tmp_path_factory.mktemp("images")
    k = 0
    for i, im in enumerate(photos):
        for j in range(3 if i < 2 else 4):
            sub = im[j * 17 : j * 17 + 230, j * 23 : j * 23 + 260]
            ext = "jpg" if k % 2 == 0 else "png"
            write_image(root / f"class{i}" / f"img{k:02d}.{ext}", sub)
            k += 1
    return root
