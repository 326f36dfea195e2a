"""Crafted image files for the hostile tests, built byte by byte (nothing downloaded).

Decompression bombs are small files whose header claims a huge image; `png16_bomb` is
also a *valid* 16-bit PNG that really decompresses to that size, so a reader that
decodes before checking would allocate GBs.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np


def photo(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    """A crop of scikit-image's astronaut (bundled), shifted per seed."""
    from skimage import data

    y, x = 100 + 7 * seed, 150 + 5 * seed
    return np.ascontiguousarray(data.astronaut()[y : y + height, x : x + width])


def write_png(path: Path, img: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def jpeg_bytes(img: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(height: int, width: int, *, depth: int = 8, colour: int = 2, idat: bytes | None = None) -> bytes:
    """A PNG with the given IHDR; IDAT `idat` (default: one compressed empty row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\0")
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def png16_bomb(side: int = 10_000) -> bytes:
    """A valid 16-bit RGB PNG of side x side black pixels (6 bytes a pixel): about 0.6 MB
    of file for side 10000 that decodes to 600 MB (and more while converting to 8 bits)."""
    row = b"\0" * (1 + side * 6)  # filter byte + pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return png_bytes(side, side, depth=16, colour=2, idat=idat)


def jpeg_claiming(height: int, width: int, base: bytes | None = None) -> bytes:
    """A real small JPEG whose frame header (SOF) is rewritten to claim height x width."""
    raw = bytearray(base if base is not None else jpeg_bytes(photo(16, 16)))
    pos = 2
    while pos + 9 < len(raw):
        marker, length = raw[pos + 1], (raw[pos + 2] << 8) | raw[pos + 3]
        if marker in (0xC0, 0xC1, 0xC2):
            raw[pos + 5 : pos + 7] = height.to_bytes(2, "big")
            raw[pos + 7 : pos + 9] = width.to_bytes(2, "big")
            return bytes(raw)
        pos += 2 + length
    raise ValueError("no frame header found")


def bmp_claiming(height: int, width: int) -> bytes:
    """A 24-bit BMP header claiming height x width, followed by a few bytes of pixels."""
    header = struct.pack("<2sIHHI", b"BM", 54 + 64, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 64, 2835, 2835, 0, 0)
    return header + info + b"\0" * 64


def truncated_jpeg_with_end_marker(img: np.ndarray) -> bytes:
    """Half a JPEG plus an end-of-image marker: libjpeg pads it and prints a warning."""
    raw = jpeg_bytes(img)
    return raw[: len(raw) // 2] + b"\xff\xd9"


def png16(img16: np.ndarray) -> bytes:
    """A real 16-bit RGB PNG (written by OpenCV, which stores BGR)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img16[..., ::-1]))
    assert ok
    return buf.tobytes()


def corrupt_png16(img16: np.ndarray) -> bytes:
    """A 16-bit PNG whose compressed data is damaged (CRC fixed up): libpng reports an error."""
    raw = bytearray(png16(img16))
    start = raw.find(b"IDAT")
    length = struct.unpack(">I", raw[start - 4 : start])[0]
    for i in range(start + 6, start + 4 + min(length, 64)):
        raw[i] ^= 0x5A
    crc = zlib.crc32(bytes(raw[start : start + 4 + length])) & 0xFFFFFFFF
    raw[start + 4 + length : start + 8 + length] = struct.pack(">I", crc)
    return bytes(raw)
