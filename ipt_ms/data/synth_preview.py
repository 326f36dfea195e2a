"""`ipt-ms synth --preview`: one PNG contact sheet, a row per image, its clean crop beside each task's
degraded crop, each labelled.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ipt_ms.data.imageio import to_uint8, write_image
from ipt_ms.errors import IPTError


def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(to_uint8(img))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 7 * len(text) + 6, 14), fill=(0, 0, 0))
    draw.text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(canvas)


def _crop_pair(lq: np.ndarray, gt: np.ndarray, scale: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Central crops (in target pixels) of a pair; LR is shown nearest-upscaled."""
    size = min(size, gt.shape[0] // scale * scale, gt.shape[1] // scale * scale)
    size -= size % scale
    y = (gt.shape[0] - size) // 2 // scale * scale
    x = (gt.shape[1] - size) // 2 // scale * scale
    gt_c = gt[y : y + size, x : x + size]
    lq_c = lq[y // scale : (y + size) // scale, x // scale : (x + size) // scale]
    if scale > 1:
        lq_c = np.repeat(np.repeat(lq_c, scale, axis=0), scale, axis=1)
    return to_uint8(lq_c), to_uint8(gt_c)


#: at most this many images (rows) on the preview sheet; the title says when there are more
PREVIEW_MAX_IMAGES = 16


def make_preview(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: os.PathLike | str,
                 total_images: int | None = None, overwrite: bool = False) -> Path:
    """Write a contact sheet: one row per image (its name, then clean | each task's degraded
    crop), every panel labelled; a title line says how many of the images are shown."""
    if not rows:
        raise IPTError("nothing to preview")
    size = max(panel.shape[0] for _, panels in rows for _, panel in panels)
    gap = 4
    lines = []
    for name, panels in rows:
        cells = []
        for title, panel in panels:
            pad = [(0, size - panel.shape[0]), (0, size - panel.shape[1]), (0, 0)]
            cells += [_label(np.pad(panel, pad), title), np.full((size, gap, 3), 255, np.uint8)]
        lines.append(np.concatenate([_name_strip(name, size)] + cells[:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, [(0, 0), (0, width - line.shape[1]), (0, 0)], constant_values=255) for line in lines]
    shown = len(rows)
    total = total_images or shown
    title = f"{shown} image(s)" if shown == total else f"first {shown} of {total} images"
    sheet = [_title_bar(title, width), np.full((gap, width, 3), 255, np.uint8)]
    for line in lines:
        sheet += [line, np.full((gap, width, 3), 255, np.uint8)]
    return write_image(path, np.concatenate(sheet, axis=0), overwrite=overwrite)


def _title_bar(text: str, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (width, 16), (255, 255, 255))
    ImageDraw.Draw(bar).text((3, 2), text, fill=(0, 0, 0))
    return np.asarray(bar)


def _name_strip(name: str, height: int, width: int = 96) -> np.ndarray:
    """The image's name, written down the left of its row (cut to fit)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    chars = max(1, (width - 6) // 6)
    lines = [name[i:i + chars] for i in range(0, len(name), chars)][: max(1, height // 12)]
    ImageDraw.Draw(strip).multiline_text((3, 2), "\n".join(lines), fill=(0, 0, 0))
    return np.asarray(strip)
