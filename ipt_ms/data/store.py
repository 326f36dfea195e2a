"""Decoded-image access for training: optional in-memory LRU and on-disk .npy cache.

A training sample needs one random crop of one image, but decoding costs the whole image:
~1.2 ms for an ImageNet-sized JPEG, ~40 ms for a 2K DIV2K PNG. :class:`ImageStore` can

* keep recently decoded images in memory (``memory_mb``; good for small sets such as
  RainTrainL, whose 200 pairs fit in ~100 MB), and/or
* write each decoded image once to ``cache_dir`` as ``.npy`` and afterwards memory-map it,
  so a crop reads only the rows it needs (good for DIV2K / GoPro; this is what EDSR's
  ``--ext sep`` does).

Each worker process holds its own store; the memory budget is per process.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ipt_ms.data.imageio import read_image

__all__ = ["ImageStore"]


class ImageStore:
    """``load(path)`` -> HxWx3 uint8, possibly read-only (callers crop and copy)."""

    def __init__(self, memory_mb: float = 0, cache_dir: os.PathLike | str | None = None):
        self.memory_bytes = int(memory_mb * 1024 * 1024)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._used = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_lru"] = OrderedDict()
        state["_used"] = 0
        return state

    def _cache_path(self, path: Path) -> Path:
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=12).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def _decode(self, path: Path) -> np.ndarray:
        if self.cache_dir is None:
            return read_image(path, writable=False)
        npy = self._cache_path(path)
        if npy.is_file():
            try:
                return np.load(npy, mmap_mode="r")
            except (OSError, ValueError):
                pass  # partial file from an interrupted run: rebuild it
        img = read_image(path)
        npy.parent.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_name(f"{npy.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, img)
        os.replace(tmp, npy)  # atomic: concurrent workers never see half a file
        return img

    def load(self, path: os.PathLike | str) -> np.ndarray:
        path = Path(path)
        if self.memory_bytes <= 0:
            return self._decode(path)
        key = str(path)
        hit = self._lru.get(key)
        if hit is not None:
            self._lru.move_to_end(key)
            return hit
        img = self._decode(path)
        if not isinstance(img, np.memmap) and img.nbytes <= self.memory_bytes:
            self._lru[key] = img
            self._used += img.nbytes
            while self._used > self.memory_bytes:
                _, old = self._lru.popitem(last=False)
                self._used -= old.nbytes
        return img
