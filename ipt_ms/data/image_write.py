"""Writing images atomically: HxW, HxWx3, or with alpha; the format from the extension."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ipt_ms.errors import IPTError


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 255] (any range) -> uint8: round half up and clip, as when saving a PNG."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return np.clip(np.floor(img.astype(np.float64) + 0.5), 0, 255).astype(np.uint8)


def write_image(path: os.PathLike | str, img: np.ndarray, quality: int = 95, atomic: bool = True,
                overwrite: bool = False) -> Path:
    """Write an HxW, HxWx3 (or with alpha HxWx2 / HxWx4) image (uint8, or float in [0, 255],
    rounded); creates parents.

    The format comes from the extension. ``atomic`` (default) writes a temporary file and
    renames it (`ipt_ms.fileio.atomic_output`): the file is complete or absent, and a full
    disk is one line naming it. ``atomic=False`` writes `path` directly (for a caller
    that already writes to its own temporary name). An existing file is replaced only with
    ``overwrite``.
    """
    from ipt_ms.fileio import atomic_output, write_error

    path = Path(path)
    arr = to_uint8(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise IPTError(f"cannot write {path}: expected HxW, HxWx2 (gray+alpha), HxWx3 or HxWx4 (RGBA) image, "
                       f"got shape {arr.shape}")
    ext = path.suffix.lower()
    if Image.registered_extensions().get(ext) is None:
        raise IPTError(f"cannot write image {path}: unknown image extension {path.suffix!r}")
    options = {"compress_level": 3} if ext == ".png" else {}
    if ext in (".jpg", ".jpeg", ".webp"):
        options = {"quality": int(quality)}
    image = Image.fromarray(np.ascontiguousarray(arr))

    def save(target: Path) -> None:
        try:
            image.save(target, format=Image.registered_extensions()[ext], **options)
        except (ValueError, KeyError) as err:
            raise IPTError(f"cannot write image {path}: {err}") from None

    if atomic:
        with atomic_output(path, overwrite=overwrite) as tmp:
            save(tmp)
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path)
    except OSError as err:
        raise write_error(path, err) from None
    return path
