"""Pairs of a degraded input and its clean target, loaded one at a time: `Pair`, and the datasets the
folder loaders (`ipt_ms.data.folders`) return: stored pairs (`FilePairs`), bicubic-downscaled SR pairs
(`GeneratedSRPairs`) and pairs degraded on the fly (`SyntheticPairs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ipt_ms.data.degrade import Degrader
from ipt_ms.data.imageio import read_image
from ipt_ms.data.imresize import imresize, modcrop
from ipt_ms.errors import IPTError


class Pair(NamedTuple):
    """One evaluation / fine-tuning pair (HxWx3 arrays on [0, 255])."""

    lq: np.ndarray
    gt: np.ndarray
    name: str


@dataclass(frozen=True)
class PairEntry:
    """Where a pair lives on disk; ``lq`` is None when the input is synthesised."""

    name: str
    gt: Path
    lq: Path | None = None


class PairDataset(Sequence):
    """Base class: a list of entries, loaded one pair at a time."""

    #: output size / input size (1 except for super-resolution).
    scale: int = 1
    entries: list[PairEntry]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Pair:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("PairDataset does not support slicing; use subset()")
        return self.load(self.entries[i])

    def __iter__(self) -> Iterator[Pair]:
        for entry in self.entries:
            yield self.load(entry)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def subset(self, names: Sequence[str]) -> PairDataset:
        """The same loader restricted to ``names`` (in that order)."""
        index = {e.name: e for e in self.entries}
        missing = [n for n in names if n not in index]
        if missing:
            raise IPTError(f"not in this dataset: {', '.join(missing[:5])}")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.entries = [index[n] for n in names]
        return clone

    def load(self, entry: PairEntry) -> Pair:
        raise NotImplementedError


class FilePairs(PairDataset):
    """Pairs stored as files (LR/HR, rainy/clean, blur/sharp).

    For SR (``scale`` > 1) the HR image is cropped to LR*s, as EDSR/IPT do; an LR image
    larger than HR/s is an error naming both files.
    """

    def __init__(self, entries: list[PairEntry], scale: int = 1, description: str = "pairs"):
        if not entries:
            raise IPTError(f"no {description} found")
        self.entries = list(entries)
        self.scale = int(scale)
        self.description = description

    def load(self, entry: PairEntry) -> Pair:
        lq = read_image(entry.lq)
        gt = read_image(entry.gt)
        s = self.scale
        need_h, need_w = lq.shape[0] * s, lq.shape[1] * s
        if gt.shape[0] < need_h or gt.shape[1] < need_w:
            raise IPTError(
                f"{entry.lq} is {lq.shape[1]}x{lq.shape[0]} but {entry.gt} is only "
                f"{gt.shape[1]}x{gt.shape[0]} (expected at least {need_w}x{need_h} for x{s})"
            )
        return Pair(lq, gt[:need_h, :need_w], entry.name)


class GeneratedSRPairs(PairDataset):
    """HR files whose LR is made on the fly with MATLAB-exact bicubic (uint8 per pass)."""

    def __init__(self, entries: list[PairEntry], scale: int):
        if not entries:
            raise IPTError("no HR images found")
        self.entries = list(entries)
        self.scale = int(scale)

    def load(self, entry: PairEntry) -> Pair:
        hr = modcrop(read_image(entry.gt), self.scale)
        return Pair(imresize(hr, 1.0 / self.scale), hr, entry.name)


class SyntheticPairs(PairDataset):
    """Clean files degraded on the fly by a :class:`Degrader`, seeded by (seed, name)."""

    def __init__(self, entries: list[PairEntry], degrader: Degrader, seed: int = 0):
        if not entries:
            raise IPTError("no clean images found")
        self.entries = list(entries)
        self.degrader = degrader
        self.seed = int(seed)
        self.scale = degrader.scale

    def load(self, entry: PairEntry) -> Pair:
        lq, gt = self.degrader(read_image(entry.gt), self.seed, entry.name)
        return Pair(lq, gt, entry.name)
