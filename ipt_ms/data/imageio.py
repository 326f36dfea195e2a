"""Reading and writing images: always HxWx3 uint8 RGB in memory.

This module decodes and converts; the rest of the image I/O sits beside it, one idea a
file, and is re-exported here: headers and the pixel limit (`image_header`), the native
decoders kept off the terminal (`native_decoders`), conversion notes (`image_notes`),
writing (`image_write`) and listing folders (`image_list`).

Every loader in ``ipt_ms.data`` goes through :func:`read_image`, so the rules are in one
place:

* grayscale (L, 1-bit) is replicated to 3 channels; palette images are expanded;
* an alpha channel (RGBA, LA, PA, palette transparency) is **dropped**, not composited on
  a background, so the colour values stay exactly as stored (:func:`read_image_planes`
  keeps it, and whether the file is grayscale, for ``ipt-ms restore``);
* CMYK / YCbCr / LAB / HSV are converted to RGB by Pillow;
* 16-bit images (PNG/TIFF, gray or RGB) become 8-bit with ``round(v / 257)`` (MATLAB's
  ``im2uint8``), with one warning line naming the file. Pillow would silently truncate
  16-bit RGB PNGs to their high byte, so those are decoded with OpenCV instead;
* float images (mode F) in [0, 1] are scaled by 255, otherwise taken as [0, 255]; rounded
  and clipped, with a warning;
* multi-frame files (GIF, TIFF) give their first frame; EXIF orientation is **not** applied
  (pixels as stored, as the official IPT/EDSR code reads them);
* a missing, truncated, corrupt or non-image file raises :class:`ImageReadError` (an
  ``IPTError``) that names the file;
* **one pixel limit for every decoder**, checked on the header before any pixel is
  decoded (PNG IHDR, JPEG frame header, or Pillow's lazy open for the other formats):
  :func:`max_image_pixels`, Pillow's default of 89,478,485 pixels (about 9459 x 9459),
  or ``IPT_MS_MAX_IMAGE_PIXELS`` from the environment. A small file whose header claims
  a huge image (a decompression bomb) is refused in microseconds instead of taking GBs;
* the native decoders' own messages (libjpeg's "Corrupt JPEG data", libpng errors,
  OpenCV warnings) never reach the terminal: they are captured; JPEG data that ends early
  (which libjpeg would pad with grey) and PNG errors become the reason in the one-line
  error; a JPEG that made libjpeg complain otherwise is decoded again by Pillow.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ipt_ms.data.image_header import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_PIXELS_ENV,
    ImageHeader,
    ImageReadError,
    check_image_file,
    check_pixels,
    image_header,
    max_image_pixels,
    pillow_limits,
    png_header,
    png_ihdr,
    read_errors_named,
)
from ipt_ms.data.image_list import IMAGE_EXTENSIONS, list_images
from ipt_ms.data.image_notes import conversion_notes, note_header, note_once
from ipt_ms.data.image_write import to_uint8, write_image
from ipt_ms.data.native_decoders import decode_jpeg_cv2, plain_jpeg, read_16bit_cv2

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS_ENV",
    "ImageHeader",
    "ImagePlanes",
    "ImageReadError",
    "conversion_notes",
    "image_header",
    "image_size",
    "list_images",
    "max_image_pixels",
    "png_header",
    "read_image",
    "read_image_planes",
    "to_uint8",
    "write_image",
]

_plain_jpeg = plain_jpeg  # the name tests/data/test_imageio.py knows


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    # round(v / 257) maps 0..65535 onto 0..255 with 257*k -> k exactly (MATLAB im2uint8).
    # Row blocks bound the uint32 temporaries (a 16-bit photo at the pixel limit is 0.5 GB).
    out = np.empty(arr.shape, np.uint8)
    step = max(1, (1 << 22) // max(1, arr[:1].size))
    for start in range(0, arr.shape[0], step):
        block = arr[start : start + step].astype(np.uint32)
        out[start : start + step] = (block * 2 + 257) // 514
    return out


def _to_rgb8(arr: np.ndarray, path: Path, quiet: tuple[str, ...] = ()) -> np.ndarray:
    """Any HxW / HxWxC numeric array -> HxWx3 uint8 (warning on lossy conversions, except
    the kinds in `quiet`, which the caller handles)."""
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.dtype.itemsize > 1):
        note_once(path, "16-bit", logging.WARNING, "16-bit image converted to 8-bit (round(v/257))")
        arr = _sixteen_to_eight(np.clip(arr, 0, 65535))
    elif arr.dtype.kind == "f":
        note_once(path, "floating-point", logging.WARNING, "floating-point image converted to 8-bit")
        arr = arr.astype(np.float64)
        if np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.floor(np.nan_to_num(arr) + 0.5), 0, 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] in (2, 4):
        note_once(path, "alpha", logging.WARNING, "alpha channel dropped (colour values kept as stored)")
    if arr.shape[2] == 2:  # gray + alpha
        arr = arr[:, :, :1]
    if arr.shape[2] == 1:
        if "grayscale" not in quiet:
            note_once(path, "grayscale", logging.INFO, "grayscale image, processed as RGB (channel replicated)")
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] > 3:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "RGBa", "RGBX", "LA", "La", "PA", "L", "1"):
        return np.asarray(im)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


def read_image(path: os.PathLike | str, writable: bool = True) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array (rules in the module docstring).

    The header's size is checked against :func:`max_image_pixels` before decoding.
    Complete baseline/progressive 8-bit JPEGs are decoded by OpenCV (about 1.5x faster
    than Pillow, pixel-identical: both use libjpeg-turbo with the same settings);
    everything else by Pillow. ``writable=False`` may return a read-only array and saves
    a copy of the whole image; the training sources use it because they only crop.
    """
    path = Path(path)
    arr = _decode(path)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return arr if arr.flags.writeable or not writable else arr.copy()
    return _to_rgb8(arr, path)


@dataclass(frozen=True)
class ImagePlanes:
    """An image as `restore` keeps it: the RGB the model sees, plus what RGB cannot hold."""

    rgb: np.ndarray  # H x W x 3 uint8 (gray replicated to 3 channels)
    alpha: np.ndarray | None  # H x W uint8, or None
    gray: bool  # the file is grayscale (L, 1-bit, LA, 16-bit gray)


def read_image_planes(path: os.PathLike | str) -> ImagePlanes:
    """Like `read_image`, keeping whether the file is grayscale and its alpha channel (8-bit,
    16-bit alpha converted as the colour is); for `ipt-ms restore`, which writes them back."""
    path = Path(path)
    arr = _decode(path, gray_as_2d=True)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    alpha = None
    if channels in (2, 4):
        alpha = arr[:, :, -1]
        alpha = _sixteen_to_eight(np.clip(alpha, 0, 65535)) if alpha.dtype.itemsize > 1 else alpha
        alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
        arr = arr[:, :, :-1]
    return ImagePlanes(_to_rgb8(arr, path, quiet=("grayscale",)), alpha, channels in (1, 2))


def _decode(path: Path, gray_as_2d: bool = False) -> np.ndarray:
    """The file's pixels as decoded (uint8/uint16/float, HxW or HxWxC), limits checked.

    OpenCV decodes a grayscale JPEG to 3 equal channels; `gray_as_2d` gives it back as HxW."""
    from ipt_ms.fileio import note_input

    check_image_file(path)
    note_input(path)  # no output of this command may replace it (ipt_ms.fileio)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImageReadError(path, err.strerror or str(err)) from None
    png = png_ihdr(raw[:26])
    if png is not None:
        check_pixels(path, png[0], png[1])
    with read_errors_named(path):
        if png is not None and png[2] == 16:
            return read_16bit_cv2(path, raw)
        with pillow_limits(path), Image.open(io.BytesIO(raw)) as im:  # the header only, so far
            check_pixels(path, im.size[1], im.size[0])
            if plain_jpeg(raw, im):
                arr = decode_jpeg_cv2(raw, path)
                if arr is not None:
                    return np.ascontiguousarray(arr[:, :, 0]) if gray_as_2d and im.mode == "L" else arr
            im.load()
            arr = _pil_to_array(im)
    if arr.ndim < 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(path, f"empty image of shape {arr.shape}")
    return arr


def image_size(path: os.PathLike | str, note_conversions: bool = False) -> tuple[int, int]:
    """(H, W) from the file header without decoding the pixels (cheap folder validation).

    `note_conversions` also logs, once per file, the conversions `read_image` will apply
    (grayscale, alpha, 16-bit, float), so a training run warns at start-up instead of
    in its data workers."""
    header = image_header(path)  # the pixel limit and one-line errors, as for every read
    if note_conversions:
        with contextlib.suppress(ImageReadError), read_errors_named(Path(path)), Image.open(path) as im:
            note_header(im, Path(path))
    return header.height, header.width
