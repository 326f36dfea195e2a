"""Reading and writing images: always HxWx3 uint8 RGB in memory.

Every loader in ``ipt_ms.data`` goes through :func:`read_image`, so the rules are in one
place:

* grayscale (L, 1-bit) is replicated to 3 channels; palette images are expanded;
* an alpha channel (RGBA, LA, PA, palette transparency) is **dropped**, not composited on
  a background, so the colour values stay exactly as stored;
* CMYK / YCbCr / LAB / HSV are converted to RGB by Pillow;
* 16-bit images (PNG/TIFF, gray or RGB) become 8-bit with ``round(v / 257)`` (MATLAB's
  ``im2uint8``), with one warning line naming the file. Pillow would silently truncate
  16-bit RGB PNGs to their high byte, so those are decoded with OpenCV instead;
* float images (mode F) in [0, 1] are scaled by 255, otherwise taken as [0, 255]; rounded
  and clipped, with a warning;
* multi-frame files (GIF, TIFF) give their first frame; EXIF orientation is **not** applied
  (pixels as stored, as the official IPT/EDSR code reads them);
* a missing, truncated, corrupt or non-image file raises :class:`ImageReadError` (an
  ``IPTError``) that names the file.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ipt_ms.errors import IPTError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "image_size",
    "list_images",
    "read_image",
    "to_uint8",
    "write_image",
]

log = logging.getLogger("ipt_ms.data")

#: File extensions (lower case) treated as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class ImageReadError(IPTError):
    """An image file could not be decoded; ``path`` is the file, ``reason`` why."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def png_header(path: os.PathLike | str) -> tuple[int, int, int, int] | None:
    """(height, width, bit depth, colour type) from a PNG's IHDR chunk; None if not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big"), head[24], head[25]


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk (None if not a PNG)."""
    header = png_header(path)
    return None if header is None else header[2]


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    # round(v / 257) maps 0..65535 onto 0..255 with 257*k -> k exactly (MATLAB im2uint8).
    return ((arr.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def _read_16bit_cv2(path: Path) -> np.ndarray:
    import cv2  # lazy: only needed for 16-bit colour files

    raw = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "OpenCV could not decode the 16-bit image")
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    return arr


def _to_rgb8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Any HxW / HxWxC numeric array -> HxWx3 uint8 (warning on lossy conversions)."""
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.dtype.itemsize > 1):
        _note_once(path, "16-bit", logging.WARNING, "16-bit image converted to 8-bit (round(v/257))")
        arr = _sixteen_to_eight(np.clip(arr, 0, 65535))
    elif arr.dtype.kind == "f":
        _note_once(path, "floating-point", logging.WARNING, "floating-point image converted to 8-bit")
        arr = arr.astype(np.float64)
        if np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.floor(np.nan_to_num(arr) + 0.5), 0, 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] in (2, 4):
        _note_once(path, "alpha", logging.WARNING, "alpha channel dropped (colour values kept as stored)")
    if arr.shape[2] == 2:  # gray + alpha
        arr = arr[:, :, :1]
    if arr.shape[2] == 1:
        _note_once(path, "grayscale", logging.INFO, "grayscale image, processed as RGB (channel replicated)")
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] > 3:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr, dtype=np.uint8)


_NOTED: set[tuple[str, str]] = set()


def _note_once(path: os.PathLike | str, kind: str, level: int, message: str) -> None:
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


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _plain_jpeg(raw: bytes) -> bool:
    """True for a complete 8-bit, 1- or 3-component JPEG (the fast-path cases).

    Walks the marker segments up to the frame header (SOF). The end-of-image marker must
    be present near the end: libjpeg (as used by OpenCV) silently pads truncated data,
    so truncated or unusual files (CMYK, 12-bit) go to Pillow, which reports or converts
    them properly.
    """
    if len(raw) < 4 or raw[:3] != b"\xff\xd8\xff" or b"\xff\xd9" not in raw[-64:]:
        return False
    pos, end = 2, min(len(raw), 1 << 20)
    while pos + 4 <= end:
        if raw[pos] != 0xFF:
            return False
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (raw[pos + 2] << 8) | raw[pos + 3]
        if marker in _SOF_MARKERS:
            if pos + 10 > len(raw):
                return False
            precision, components = raw[pos + 4], raw[pos + 9]
            return precision == 8 and components in (1, 3)
        if marker in (0xD9, 0xDA) or length < 2:  # EOI / start of scan before any frame header
            return False
        pos += 2 + length
    return False


def _decode_jpeg_cv2(raw: bytes) -> np.ndarray | None:
    """Decode a plain JPEG with OpenCV (libjpeg-turbo; same pixels as Pillow, faster)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def read_image(path: os.PathLike | str, writable: bool = True) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array (rules in the module docstring).

    Complete baseline/progressive 8-bit JPEGs are decoded by OpenCV (about 1.5x faster
    than Pillow, pixel-identical: both use libjpeg-turbo with the same settings);
    everything else by Pillow. ``writable=False`` may return a read-only array and saves
    a copy of the whole image; the training sources use it because they only crop.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImageReadError(path, str(err)) from None
    if _plain_jpeg(raw):
        arr = _decode_jpeg_cv2(raw)
        if arr is not None:
            return arr
    try:
        if raw[:8] == b"\x89PNG\r\n\x1a\n" and _png_bit_depth(path) == 16:
            return _to_rgb8(_read_16bit_cv2(path), path)
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            arr = _pil_to_array(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except _READ_ERRORS as err:
        raise ImageReadError(path, str(err) or type(err).__name__) from None
    if arr.ndim < 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(path, f"empty image of shape {arr.shape}")
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return arr if arr.flags.writeable or not writable else arr.copy()
    return _to_rgb8(arr, path)


def image_size(path: os.PathLike | str, note_conversions: bool = False) -> tuple[int, int]:
    """(H, W) from the file header without decoding the pixels (cheap folder validation).

    `note_conversions` also logs, once per file, the conversions `read_image` will apply
    (grayscale, alpha, 16-bit, float), so a training run warns at start-up instead of
    in its data workers."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if note_conversions:
                _note_header(im, path)
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except _READ_ERRORS as err:
        raise ImageReadError(path, str(err) or type(err).__name__) from None
    return h, w


_MODE_NOTES = {"L": ("grayscale",), "1": ("grayscale",), "LA": ("grayscale", "alpha"), "La": ("grayscale", "alpha"),
               "RGBA": ("alpha",), "RGBa": ("alpha",), "PA": ("alpha",), "I": ("16-bit", "grayscale"),
               "F": ("floating-point", "grayscale")}


def _note_header(im: Image.Image, path: Path) -> None:
    kinds = list(_MODE_NOTES.get(im.mode, ()))
    if im.mode.startswith("I;16"):
        kinds += ["16-bit", "grayscale"]
    elif im.format == "PNG" and "16-bit" not in kinds and _png_bit_depth(path) == 16:
        kinds.append("16-bit")
    if im.mode == "P" and "transparency" in im.info:
        kinds.append("alpha")
    messages = {"grayscale": (logging.INFO, "grayscale image, processed as RGB (channel replicated)"),
                "alpha": (logging.WARNING, "alpha channel dropped (colour values kept as stored)"),
                "16-bit": (logging.WARNING, "16-bit image converted to 8-bit (round(v/257))"),
                "floating-point": (logging.WARNING, "floating-point image converted to 8-bit")}
    for kind in kinds:
        _note_once(path, kind, *messages[kind])


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 255] (any range) -> uint8: round half up and clip, as when saving a PNG."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return np.clip(np.floor(img.astype(np.float64) + 0.5), 0, 255).astype(np.uint8)


def write_image(path: os.PathLike | str, img: np.ndarray, quality: int = 95) -> Path:
    """Write an HxW or HxWx3 image (uint8, or float in [0, 255], rounded); creates parents."""
    path = Path(path)
    arr = to_uint8(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise IPTError(f"cannot write {path}: expected HxW or HxWx3 image, got shape {arr.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    options = {"compress_level": 3} if ext == ".png" else {}
    if ext in (".jpg", ".jpeg", ".webp"):
        options = {"quality": int(quality)}
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(path, **options)
    except (OSError, ValueError, KeyError) as err:
        raise IPTError(f"cannot write image {path}: {err}") from None
    return path


def list_images(
    folder: os.PathLike | str,
    recursive: bool = True,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    what: str = "image folder",
) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files skipped).

    Raises IPTError naming the folder if it does not exist or holds no images, so a wrong
    ``--data`` path fails at start-up instead of hours into a run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise IPTError(f"{what} not found: expected a folder at {folder}")
    exts = {e.lower() for e in extensions}
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(
                Path(dirpath) / f
                for f in filenames
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts
            )
    else:
        found = [
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts
        ]
    if not found:
        raise IPTError(f"{what} {folder} contains no images ({', '.join(sorted(exts))})")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
