"""Read MindSpore .ckpt files without MindSpore's loader.

A .ckpt is a protobuf ``Checkpoint`` message: repeated ``Value {tag, TensorProto tensor}``
with ``TensorProto {dims, tensor_type, tensor_content}``; a large tensor is written as
consecutive values with the same tag (slices of its bytes), strings (``append_dict``) as
type ``str`` holding numpy UTF-32 bytes, and a file may end with ``crc_num`` plus ten
bytes of CRC32. Decoding it here, with every length checked against the file before
anything is allocated, means a crafted or damaged file gets one clear line naming the
file and entry, never MindSpore's own messages or ``[ERROR]`` log lines, and never an
allocation the file's size does not back.
"""

from __future__ import annotations

import binascii
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError

#: tensor_type -> numpy dtype (BFloat16 is widened to float32, which numpy can hold).
DTYPES = {
    "Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
    "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64, "Float16": np.float16, "Float32": np.float32,
    "Float64": np.float64, "Bool": np.bool_, "BFloat16": np.uint16,
}
_CRC_MARK = b"crc_num"


class _CorruptError(Exception):
    """Raised inside the decoder; turned into one IPTError naming the file."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _CorruptError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _CorruptError("varint too long")


def _fields(buf: memoryview):
    """(field number, wire type, value) of a protobuf message; length-delimited values as views."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _CorruptError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _CorruptError("truncated fixed-size field")
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _CorruptError(f"a field claims {size:,} bytes but only {len(buf) - pos:,} remain")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise _CorruptError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor(buf: memoryview) -> tuple[list[int], str, memoryview]:
    dims, dtype, content = [], None, memoryview(b"")
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed repeated int64
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                dims.append(dim)
        elif number == 2 and wire == 2:
            dtype = bytes(value).decode("utf-8", "replace")
        elif number == 3 and wire == 2:
            content = value
    if dtype is None:
        raise _CorruptError("a tensor has no type")
    return [d - (1 << 64) if d >= 1 << 63 else d for d in dims], dtype, content


def _entries(buf: memoryview):
    """(tag, dims, type, content) per protobuf value, in file order."""
    for number, wire, value in _fields(buf):
        if number != 1 or wire != 2:
            raise _CorruptError(f"unexpected top-level field {number}")
        tag, tensor, other = None, None, False
        for inner_number, inner_wire, inner in _fields(value):
            if inner_number == 1 and inner_wire == 2:
                tag = bytes(inner).decode("utf-8")
            elif inner_number == 2 and inner_wire == 2:
                tensor = _tensor(inner)
            elif inner_number == 3:
                other = True
        if tag is None:
            raise _CorruptError("an entry has no name")
        if tensor is None:
            held = "a map tensor" if other else "no tensor"
            raise _CorruptError(f"entry {tag!r} holds {held}, which IPT weights never do")
        yield (tag,) + tensor


def _decode(tag: str, dims: list[int], dtype: str, chunks: list[memoryview]):
    data = bytearray().join(chunks)  # one writable copy, which the array then owns
    if dtype == "str":
        if len(data) % 4:
            raise _CorruptError(f"entry {tag!r}: a string of {len(data)} bytes is not UTF-32")
        return bytes(data).decode("utf-32-le").rstrip("\x00")
    if dtype not in DTYPES:
        raise _CorruptError(f"entry {tag!r} has unsupported type {dtype!r}")
    if any(d < 0 for d in dims):
        raise _CorruptError(f"entry {tag!r} has a negative dimension {tuple(dims)}")
    shape = () if dims in ([], [0]) else tuple(dims)  # MindSpore writes 0-d tensors as [] (and reads [0] so)
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    count = 1
    for d in shape:
        count *= d
    if count * itemsize != len(data):
        raise _CorruptError(f"entry {tag!r}: shape {shape} needs {count * itemsize:,} bytes, "
                            f"the file holds {len(data):,}")
    array = np.frombuffer(data, dtype=DTYPES[dtype]).reshape(shape)
    if dtype == "BFloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def read_ckpt(path: str | Path) -> dict[str, np.ndarray | str]:
    """Every entry of a .ckpt: tensors as numpy arrays, append_dict strings as str, in file order.

    Raises IPTError naming the file (and the entry) for anything that is not a complete,
    unencrypted MindSpore checkpoint.
    """
    from ipt_ms.fileio import note_input

    path = Path(path)
    note_input(path)  # no output of this command may replace it
    name = repr(str(path))
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise IPTError(f"cannot read {name}: {err.strerror or err}") from err
    if not raw:
        raise IPTError(f"{name} is empty (0 bytes), not a MindSpore checkpoint")
    if raw[-17:-10] == _CRC_MARK:
        raw, crc = raw[:-17], int.from_bytes(raw[-10:], "big")
        if binascii.crc32(raw) != crc:
            raise IPTError(f"{name} is damaged: its CRC32 does not match its content")
    out: dict[str, np.ndarray | str] = {}
    pending: tuple | None = None  # (tag, dims, type, [chunks]) of the value being assembled
    try:
        for tag, dims, dtype, content in _entries(memoryview(raw)):
            if pending is not None and pending[0] == tag:
                if (pending[1], pending[2]) != (dims, dtype):
                    raise _CorruptError(f"slices of entry {tag!r} disagree on shape or type")
                pending[3].append(content)
                continue
            if pending is not None:
                out[pending[0]] = _decode(*pending)
            if tag in out:
                raise _CorruptError(f"entry {tag!r} appears twice")
            pending = (tag, dims, dtype, [content])
        if pending is not None:
            out[pending[0]] = _decode(*pending)
    except _CorruptError as err:
        raise IPTError(f"{name} is not a readable MindSpore checkpoint (truncated, damaged or encrypted): "
                       f"{err}") from None
    except UnicodeDecodeError:
        raise IPTError(f"{name} is not a readable MindSpore checkpoint: an entry name is not UTF-8") from None
    if not out:
        raise IPTError(f"{name} is not a MindSpore checkpoint (no entries)")
    return out
