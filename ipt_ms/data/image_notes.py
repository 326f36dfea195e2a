"""Conversions on reading (grayscale, alpha, 16-bit, float), said once per file and counted.

A training run reads each file thousands of times; each conversion of a file is logged once
per process, and `conversion_notes` counts them for the run's summary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PIL import Image

from ipt_ms.data.image_header import png_header

log = logging.getLogger("ipt_ms.data")

_NOTED: set[tuple[str, str]] = set()


def note_once(path: os.PathLike | str, kind: str, level: int, message: str) -> None:
    """Log a conversion of `path` once per process, however often the file is read (a
    training run reads each file thousands of times); `conversion_notes` counts them."""
    key = (str(path), kind)
    if key not in _NOTED:
        _NOTED.add(key)
        log.log(level, "%s: %s", path, message)


def conversion_notes() -> dict[str, int]:
    """Files this process read with a conversion, by kind (grayscale, 16-bit, alpha, ...)."""
    counts: dict[str, int] = {}
    for _, kind in _NOTED:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


_MODE_NOTES = {"L": ("grayscale",), "1": ("grayscale",), "LA": ("grayscale", "alpha"), "La": ("grayscale", "alpha"),
               "RGBA": ("alpha",), "RGBa": ("alpha",), "PA": ("alpha",), "I": ("16-bit", "grayscale"),
               "F": ("floating-point", "grayscale")}


def note_header(im: Image.Image, path: Path) -> None:
    """Note the conversions `read_image` will apply to the file `im` is the lazily opened header of."""
    kinds = list(_MODE_NOTES.get(im.mode, ()))
    if im.mode.startswith("I;16"):
        kinds += ["16-bit", "grayscale"]
    elif im.format == "PNG" and "16-bit" not in kinds and (png_header(path) or (0, 0, 0))[2] == 16:
        kinds.append("16-bit")
    if im.mode == "P" and "transparency" in im.info:
        kinds.append("alpha")
    messages = {"grayscale": (logging.INFO, "grayscale image, processed as RGB (channel replicated)"),
                "alpha": (logging.WARNING, "alpha channel dropped (colour values kept as stored)"),
                "16-bit": (logging.WARNING, "16-bit image converted to 8-bit (round(v/257))"),
                "floating-point": (logging.WARNING, "floating-point image converted to 8-bit")}
    for kind in kinds:
        note_once(path, kind, *messages[kind])
