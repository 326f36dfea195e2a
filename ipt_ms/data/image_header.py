"""Image headers: size and pixel mode without decoding, and the one pixel limit every decoder obeys.

The limit is checked on the header before any pixel is decoded (PNG IHDR, or Pillow's lazy
`Image.open`, which reads only the header: a JPEG's markers up to the frame header, a BMP's
info block...), so a small file whose header claims a huge image (a decompression bomb) is
refused in microseconds instead of taking GBs. `read_image` reads a file once and opens those
bytes with Pillow to check the limit and to choose OpenCV's fast path for plain JPEGs. Every
read error comes out as one `ImageReadError` naming the file (`read_errors_named`).

The PNG IHDR is read by hand because Pillow opens a 16-bit RGB PNG as 8-bit "RGB": the bit
depth that sends such files to OpenCV (and names the mode in messages) is not in what Pillow
reports.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ipt_ms.errors import IPTError

READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

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


def check_pixels(path: Path, height: int, width: int) -> None:
    limit = max_image_pixels()
    if height * width > limit:
        raise ImageReadError(path, f"its header claims {width}x{height} = {height * width:,} pixels, more than the "
                                   f"limit of {limit:,} (a decompression bomb, or set {MAX_PIXELS_ENV})")
    if height < 1 or width < 1:
        raise ImageReadError(path, f"its header claims an empty {width}x{height} image")


def png_header(path: os.PathLike | str) -> tuple[int, int, int, int] | None:
    """(height, width, bit depth, colour type) from a PNG's IHDR chunk; None if not a PNG."""
    with open(path, "rb") as fh:
        return png_ihdr(fh.read(26))


def png_ihdr(head: bytes) -> tuple[int, int, int, int] | None:
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big"), head[24], head[25]


def _png_mode(depth: int, colour: int) -> str:
    depth = 8 if colour == 3 else depth  # palette indices, expanded to 8-bit RGB
    return f"{max(depth, 8)}-bit {_PNG_COLOUR.get(colour, f'colour type {colour}')}"


@contextlib.contextmanager
def pillow_limits(path: Path) -> Iterator[None]:
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
    check_image_file(path)
    with read_errors_named(path):
        with open(path, "rb") as fh:
            head = fh.read(26)  # a PNG's signature and IHDR
        png = png_ihdr(head[:26])
        if png is not None:
            height, width, depth, colour = png
            header = ImageHeader(height, width, _png_mode(depth, colour))
        else:  # reads the header only: Pillow decodes nothing before `load()`
            with pillow_limits(path), Image.open(path) as im:
                header = ImageHeader(im.size[1], im.size[0], _PIL_MODES.get(im.mode, im.mode))
    check_pixels(path, header.height, header.width)
    return header


def check_image_file(path: Path) -> None:
    if path.is_dir():
        raise ImageReadError(path, "it is a folder, not an image file")
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")


@contextlib.contextmanager
def read_errors_named(path: Path) -> Iterator[None]:
    """Pillow's and the system's read errors as one `ImageReadError` naming the file."""
    try:
        yield
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except READ_ERRORS as err:
        raise ImageReadError(path, str(err) or type(err).__name__) from None
