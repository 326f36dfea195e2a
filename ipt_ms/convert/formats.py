"""Which weights format a file is: by its extension, and by its first bytes.

The extension decides how a file is read and written (`weights_format`); the content must
agree with it (`check_content_matches`), so a renamed file is refused with the name it needs
rather than handed to the wrong reader.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.provenance import PROVENANCE_METADATA_KEY

TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")
MINDSPORE_SUFFIXES = (".ckpt",)
SPEC_METADATA_KEY = "ipt_spec"
TORCH_METADATA_ENTRY = "ipt_ms"  # key in a state_dict's _metadata; matches no IPT module
#: metadata key (as in .ckpt/.safetensors) -> its name inside a .pt's TORCH_METADATA_ENTRY
TORCH_METADATA_NAMES = {SPEC_METADATA_KEY: "spec", PROVENANCE_METADATA_KEY: "provenance"}
#: layouts `save_weights` writes: ours (any extension), or the model zoo's (.ckpt, no metadata)
WRITE_LAYOUTS = ("ipt-ms", "zoo", "zoo-hub")


def weights_format(path: str | Path) -> str:
    """'torch' or 'mindspore' from the file extension; IPTError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix in MINDSPORE_SUFFIXES:
        return "mindspore"
    raise IPTError(f"{str(path)!r}: unknown weights extension {suffix!r} "
                   f"(expected one of {', '.join(TORCH_SUFFIXES + MINDSPORE_SUFFIXES)})")


def check_regular_file(path: str | Path, what: str = "weights file") -> Path:
    """`path` as an existing, non-empty regular file; IPTError saying what it is otherwise."""
    path = Path(path)
    name = repr(str(path))
    try:
        info = path.stat()
    except FileNotFoundError:
        raise IPTError(f"{what} not found: {name}") from None
    except OSError as err:
        raise IPTError(f"cannot read {what} {name}: {err.strerror or err}") from err
    if stat.S_ISDIR(info.st_mode):
        raise IPTError(f"{name} is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise IPTError(f"{name} is not a regular file (a device, pipe or socket), not a {what}")
    if info.st_size == 0:
        raise IPTError(f"{name} is empty (0 bytes), not a {what}")
    return path


def check_weights_path(path: str | Path) -> Path:
    """`path` as a readable, non-empty regular file with a weights extension; IPTError otherwise."""
    path = check_regular_file(path)
    weights_format(path)
    return path


def sniff_format(path: Path) -> str | None:
    """What the first bytes say the file is: torch, safetensors, mindspore, onnx or None."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    size = path.stat().st_size
    if len(head) >= 9 and 0 < int.from_bytes(head[:8], "little") < size and head[8:9] == b"{":
        return "safetensors"  # 8-byte header length, then the JSON header
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"  # torch.save zip archive / legacy pickle
    if head[:1] == b"\x0a":
        return "mindspore"  # protobuf field 1, length-delimited: Checkpoint.value
    if head[:1] == b"\x08":
        return "onnx"  # protobuf field 1, varint: ModelProto.ir_version
    return None


_EXPECTED = {".pt": "torch", ".pth": "torch", ".safetensors": "safetensors", ".ckpt": "mindspore"}
_WHAT = {"torch": "PyTorch (torch.save)", "safetensors": "safetensors", "mindspore": "MindSpore checkpoint",
         "onnx": "ONNX model"}
_SUFFIX_FOR = {"torch": ".pt", "safetensors": ".safetensors", "mindspore": ".ckpt"}


def check_content_matches(path: Path) -> None:
    """Refuse a weights file whose first bytes say it is another format than its extension."""
    suffix = path.suffix.lower()
    found = sniff_format(path)
    if found == "onnx":
        raise IPTError(f"{str(path)!r} is an ONNX model, not a weights file: run it with --framework onnx")
    if found is not None and found != _EXPECTED[suffix]:
        raise IPTError(f"{str(path)!r} is named {suffix} but holds a {_WHAT[found]} file; "
                       f"rename it to {_SUFFIX_FOR[found]}")
