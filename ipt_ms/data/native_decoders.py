"""The native decoders (OpenCV's libjpeg-turbo and libpng) behind `read_image`, kept off the terminal.

Native decoders print to file descriptor 2 directly (libjpeg's "Corrupt JPEG data", libpng
errors, OpenCV's logger); `native_stderr` sends fd 2 to a private file while they run, so
their words become the reason in a one-line error, or a debug line, instead of terminal noise.
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ipt_ms.data.image_header import READ_ERRORS, ImageReadError

log = logging.getLogger("ipt_ms.data")

_STDERR_LOCK = threading.Lock()
_CAPTURE: dict[int, object] = {}  # pid -> temporary file that receives fd 2 while decoding
_OPENCV_PREFIX = re.compile(r"^\[[^\]]*\]\s*global\s+\S+:\d+\s+\S+\s+")


def _reset_stderr_lock() -> None:  # a fork while another thread decodes must not inherit a held lock
    global _STDERR_LOCK
    _STDERR_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_stderr_lock)


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
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


def native_reason(text: str, fallback: str) -> str:
    """The last line a native decoder printed, without OpenCV's '[ WARN:0@0.01] global x.cpp:1 fn ' prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _OPENCV_PREFIX.sub("", lines[-1]) if lines else fallback


def read_16bit_cv2(path: Path, raw: bytes) -> np.ndarray:
    import cv2  # lazy: only needed for 16-bit colour files

    with native_stderr() as printed:
        arr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, native_reason(printed[0], "OpenCV could not decode the 16-bit image"))
    if printed[0]:
        log.debug("%s: the PNG decoder said: %s", path, printed[0])
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, [2, 1, 0, 3][:arr.shape[2]]]  # BGR(A) -> RGB(A)
    return arr


def plain_jpeg(raw: bytes, header: Image.Image | None = None) -> bool:
    """True for a complete 8-bit, 1- or 3-component JPEG (the fast-path cases).

    `header` is `raw` already opened by Pillow (which read only the header); without it,
    `raw` is opened here. Pillow refuses precisions other than 8 bits on opening and calls
    1 and 3 components "L" and "RGB". The end-of-image marker must be present near the end
    (checked by hand: Pillow's lazy open stops at the first scan): libjpeg (as used by
    OpenCV) silently pads truncated data, so truncated or unusual files (CMYK, 12-bit) go
    to Pillow, which reports or converts them properly.
    """
    if b"\xff\xd9" not in raw[-64:]:
        return False
    if header is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(raw), formats=["JPEG"]) as im:
                    return plain_jpeg(raw, im)
        except (UnidentifiedImageError, *READ_ERRORS):
            return False
    return header.format == "JPEG" and header.mode in ("L", "RGB")


def decode_jpeg_cv2(raw: bytes, path: Path) -> np.ndarray | None:
    """Decode a plain JPEG with OpenCV (libjpeg-turbo; same pixels as Pillow, faster).

    libjpeg's messages stay off the terminal. Data that ends early ("premature end of
    data segment": libjpeg pads the rest with grey) is an error naming the file; after any
    other complaint (e.g. extraneous bytes) it returns None and Pillow decides.
    """
    import cv2

    with native_stderr() as printed:
        bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if "premature end" in printed[0].lower():
        raise ImageReadError(path, f"truncated JPEG data ({native_reason(printed[0], 'premature end')})")
    if printed[0] or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)
