"""Reading and writing images: always HxWx3 uint8 RGB in memory.

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
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ipt_ms.errors import IPTError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageHeader",
    "ImageReadError",
    "image_header",
    "image_size",
    "list_images",
    "max_image_pixels",
    "read_image",
    "to_uint8",
    "write_image",
]

log = logging.getLogger("ipt_ms.data")

#: File extensions (lower case) treated as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

MAX_PIXELS_ENV = "IPT_MS_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS default

# How a file stores its pixels, as named in error messages and eval's mixed-mode check.
_PNG_COLOUR = {0: "gray", 2: "RGB", 3: "RGB", 4: "gray+alpha", 6: "RGBA"}
_PIL_MODES = {"1": "8-bit gray", "L": "8-bit gray", "P": "8-bit RGB", "RGB": "8-bit RGB", "YCbCr": "8-bit RGB",
              "RGBA": "8-bit RGBA", "LA": "8-bit gray+alpha", "PA": "8-bit RGBA", "I;16": "16-bit gray",
              "I;16B": "16-bit gray", "I": "32-bit integer", "F": "32-bit float", "CMYK": "CMYK"}


class ImageReadError(IPTError):
    """An image file could not be decoded; ``path`` is the file, ``reason`` why."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: size and how the pixels are stored (e.g. '8-bit RGB')."""

    height: int
    width: int
    mode: str


def max_image_pixels() -> int:
    """The largest image (height x width) any reader decodes; ``IPT_MS_MAX_IMAGE_PIXELS`` overrides.

    Pillow's own decompression-bomb limit is set to the same value, so Pillow neither
    warns below it nor refuses above it on its own terms.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    limit = DEFAULT_MAX_IMAGE_PIXELS
    if text:
        try:
            limit = int(text.replace("_", ""))
        except ValueError:
            limit = 0
        if limit < 1:
            raise IPTError(f"environment variable {MAX_PIXELS_ENV}={text!r} should be a positive pixel count")
    Image.MAX_IMAGE_PIXELS = limit
    return limit


def _check_pixels(path: Path, height: int, width: int) -> None:
    limit = max_image_pixels()
    if height * width > limit:
        raise ImageReadError(path, f"its header claims {width}x{height} = {height * width:,} pixels, more than the "
                                   f"limit of {limit:,} (a decompression bomb, or set {MAX_PIXELS_ENV})")
    if height < 1 or width < 1:
        raise ImageReadError(path, f"its header claims an empty {width}x{height} image")


def png_header(path: os.PathLike | str) -> tuple[int, int, int, int] | None:
    """(height, width, bit depth, colour type) from a PNG's IHDR chunk; None if not a PNG."""
    with open(path, "rb") as fh:
        return _png_ihdr(fh.read(26))


def _png_ihdr(head: bytes) -> tuple[int, int, int, int] | None:
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big"), head[24], head[25]


def _png_mode(depth: int, colour: int) -> str:
    depth = 8 if colour == 3 else depth  # palette indices, expanded to 8-bit RGB
    return f"{max(depth, 8)}-bit {_PNG_COLOUR.get(colour, f'colour type {colour}')}"


@contextlib.contextmanager
def _pillow_limits(path: Path) -> Iterator[None]:
    """Pillow at our pixel limit: its bomb warning silenced, its bomb error in our words."""
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Image.DecompressionBombError:
        raise ImageReadError(path, f"its header claims more than {limit:,} pixels, the limit (a decompression "
                                   f"bomb, or set {MAX_PIXELS_ENV})") from None


def image_header(path: os.PathLike | str) -> ImageHeader:
    """Size and pixel mode from the file header, without decoding pixels; the pixel limit applies.

    Cheap folder validation (eval checks every file of a set with it before any model
    runs); a file it accepts may still fail to decode (:func:`read_image` says why).
    """
    path = Path(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)  # IHDR, or a JPEG frame header after the usual APP segments
        png = _png_ihdr(head[:26])
        if png is not None:
            height, width, depth, colour = png
            header = ImageHeader(height, width, _png_mode(depth, colour))
        else:
            frame = _jpeg_frame(head)
            if frame is not None:
                _check_pixels(path, frame[1], frame[2])
            with _pillow_limits(path), Image.open(path) as im:
                header = ImageHeader(im.size[1], im.size[0], _PIL_MODES.get(im.mode, im.mode))
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except _READ_ERRORS as err:
        raise ImageReadError(path, str(err) or type(err).__name__) from None
    _check_pixels(path, header.height, header.width)
    return header


def _check_regular_file(path: Path) -> None:
    if path.is_dir():
        raise ImageReadError(path, "it is a folder, not an image file")
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")


# Native decoders (libjpeg, libpng, OpenCV's logger) print to file descriptor 2 directly.
_STDERR_LOCK = threading.Lock()
_CAPTURE: dict[int, object] = {}  # pid -> temporary file that receives fd 2 while decoding
_OPENCV_PREFIX = re.compile(r"^\[[^\]]*\]\s*global\s+\S+:\d+\s+\S+\s+")


def _reset_stderr_lock() -> None:  # a fork while another thread decodes must not inherit a held lock
    global _STDERR_LOCK
    _STDERR_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_stderr_lock)


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Send fd 2 to a private file while a native decoder runs; yields a list that then
    holds what it printed (one string, possibly empty)."""
    captured: list[str] = []
    with _STDERR_LOCK:
        sink = _CAPTURE.get(os.getpid())
        if sink is None:  # one per process: a forked worker must not share the parent's offset
            sink = _CAPTURE[os.getpid()] = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the process)
        sink.seek(0)
        sink.truncate()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to protect
            yield captured
            return
        try:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        sink.seek(0)
        captured.append(sink.read(8192).decode("utf-8", "replace").strip())


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    # round(v / 257) maps 0..65535 onto 0..255 with 257*k -> k exactly (MATLAB im2uint8).
    # Row blocks bound the uint32 temporaries (a 16-bit photo at the pixel limit is 0.5 GB).
    out = np.empty(arr.shape, np.uint8)
    step = max(1, (1 << 22) // max(1, arr[:1].size))
    for start in range(0, arr.shape[0], step):
        block = arr[start : start + step].astype(np.uint32)
        out[start : start + step] = (block * 2 + 257) // 514
    return out


def _native_reason(text: str, fallback: str) -> str:
    """The last line a native decoder printed, without OpenCV's '[ WARN:0@0.01] global x.cpp:1 fn ' prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _OPENCV_PREFIX.sub("", lines[-1]) if lines else fallback


def _read_16bit_cv2(path: Path, raw: bytes) -> np.ndarray:
    import cv2  # lazy: only needed for 16-bit colour files

    with _native_stderr() as printed:
        arr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, _native_reason(printed[0], "OpenCV could not decode the 16-bit image"))
    if printed[0]:
        log.debug("%s: the PNG decoder said: %s", path, printed[0])
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, [2, 1, 0, 3][:arr.shape[2]]]  # BGR(A) -> RGB(A)
    return arr


def _to_rgb8(arr: np.ndarray, path: Path, quiet: tuple[str, ...] = ()) -> np.ndarray:
    """Any HxW / HxWxC numeric array -> HxWx3 uint8 (warning on lossy conversions, except
    the kinds in `quiet`, which the caller handles)."""
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
        if "grayscale" not in quiet:
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


def _jpeg_frame(raw: bytes) -> tuple[int, int, int, int] | None:
    """(precision, height, width, components) from a JPEG's frame header (SOF), or None.

    Walks the marker segments of the first MiB up to the SOF, without decoding.
    """
    if len(raw) < 4 or raw[:3] != b"\xff\xd8\xff":
        return None
    pos, end = 2, min(len(raw), 1 << 20)
    while pos + 4 <= end:
        if raw[pos] != 0xFF:
            return None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (raw[pos + 2] << 8) | raw[pos + 3]
        if marker in _SOF_MARKERS:
            if pos + 10 > len(raw):
                return None
            height = (raw[pos + 5] << 8) | raw[pos + 6]
            width = (raw[pos + 7] << 8) | raw[pos + 8]
            return raw[pos + 4], height, width, raw[pos + 9]
        if marker in (0xD9, 0xDA) or length < 2:  # EOI / start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _plain_jpeg(raw: bytes) -> bool:
    """True for a complete 8-bit, 1- or 3-component JPEG (the fast-path cases).

    The end-of-image marker must be present near the end: libjpeg (as used by OpenCV)
    silently pads truncated data, so truncated or unusual files (CMYK, 12-bit) go to
    Pillow, which reports or converts them properly.
    """
    if b"\xff\xd9" not in raw[-64:]:
        return False
    frame = _jpeg_frame(raw)
    return frame is not None and frame[0] == 8 and frame[3] in (1, 3)


def _decode_jpeg_cv2(raw: bytes, path: Path) -> np.ndarray | None:
    """Decode a plain JPEG with OpenCV (libjpeg-turbo; same pixels as Pillow, faster).

    libjpeg's messages stay off the terminal. Data that ends early ("premature end of
    data segment": libjpeg pads the rest with grey) is an error naming the file; after any
    other complaint (e.g. extraneous bytes) it returns None and Pillow decides.
    """
    import cv2

    with _native_stderr() as printed:
        bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if "premature end" in printed[0].lower():
        raise ImageReadError(path, f"truncated JPEG data ({_native_reason(printed[0], 'premature end')})")
    if printed[0] or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


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

    _check_regular_file(path)
    note_input(path)  # no output of this command may replace it (ipt_ms.fileio)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImageReadError(path, err.strerror or str(err)) from None
    png = _png_ihdr(raw[:26])
    frame = _jpeg_frame(raw) if png is None else None
    if png is not None:
        _check_pixels(path, png[0], png[1])
    elif frame is not None:
        _check_pixels(path, frame[1], frame[2])
    if frame is not None and _plain_jpeg(raw):
        arr = _decode_jpeg_cv2(raw, path)
        if arr is not None:
            return np.ascontiguousarray(arr[:, :, 0]) if gray_as_2d and frame[3] == 1 else arr
    try:
        if png is not None and png[2] == 16:
            return _read_16bit_cv2(path, raw)
        with _pillow_limits(path), Image.open(io.BytesIO(raw)) as im:
            _check_pixels(path, im.size[1], im.size[0])
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
    return arr


def image_size(path: os.PathLike | str, note_conversions: bool = False) -> tuple[int, int]:
    """(H, W) from the file header without decoding the pixels (cheap folder validation).

    `note_conversions` also logs, once per file, the conversions `read_image` will apply
    (grayscale, alpha, 16-bit, float), so a training run warns at start-up instead of
    in its data workers."""
    header = image_header(path)  # the pixel limit and one-line errors, as for every read
    if note_conversions:
        with contextlib.suppress(UnidentifiedImageError, *_READ_ERRORS), Image.open(path) as im:
            _note_header(im, Path(path))
    return header.height, header.width


_MODE_NOTES = {"L": ("grayscale",), "1": ("grayscale",), "LA": ("grayscale", "alpha"), "La": ("grayscale", "alpha"),
               "RGBA": ("alpha",), "RGBa": ("alpha",), "PA": ("alpha",), "I": ("16-bit", "grayscale"),
               "F": ("floating-point", "grayscale")}


def _note_header(im: Image.Image, path: Path) -> None:
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
        _note_once(path, kind, *messages[kind])


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


def list_images(
    folder: os.PathLike | str,
    recursive: bool = True,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    what: str = "image folder",
) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files and folders skipped).

    Symbolic links are followed, but every folder is entered once (a link back to a
    parent is a loop, not more images) and every file is listed once: under its real
    name when the folder holds it directly, else under the first link in sorted order.
    Raises IPTError naming the folder if it does not exist or holds no images, so a wrong
    ``--data`` path fails at start-up instead of hours into a run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        if folder.exists():
            raise IPTError(f"{what} {folder} is a file, not a folder")
        raise IPTError(f"{what} not found: expected a folder at {folder}")
    exts = {e.lower() for e in extensions}
    candidates: dict[tuple[int, int] | Path, tuple[bool, str, Path]] = {}
    seen_dirs: set[tuple[int, int]] = set()
    real_dirs, linked_dirs = [folder], []  # folders reached through a link are entered last
    while real_dirs or linked_dirs:
        directory = real_dirs.pop() if real_dirs else linked_dirs.pop(0)
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen_dirs:
                continue
            seen_dirs.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as err:
            if directory == folder:
                raise IPTError(f"cannot list {what} {folder}: {err.strerror or err}") from None
            log.warning("%s: skipped, cannot be listed (%s)", directory, err.strerror or err)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(entry)
                continue
            if os.path.splitext(entry.name)[1].lower() not in exts:
                continue
            path = Path(entry.path)
            link = entry.is_symlink()
            try:
                target = entry.stat() if link else None
                identity = (target.st_dev, target.st_ino) if target else (info.st_dev, entry.inode())
            except OSError:  # a broken link stays listed: reading it names it
                identity = path
            rank = (link, path.relative_to(folder).as_posix(), path)
            if identity not in candidates or rank < candidates[identity]:
                candidates[identity] = rank
        if recursive:
            real_dirs.extend(Path(e.path) for e in reversed(subdirs) if not e.is_symlink())
            linked_dirs.extend(Path(e.path) for e in subdirs if e.is_symlink())
    found = [path for _, _, path in candidates.values()]
    if not found:
        raise IPTError(f"{what} {folder} contains no images ({', '.join(sorted(exts))})")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
