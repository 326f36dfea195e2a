"""Memory predicted before the work: estimates of peak memory, checked against what is available.

A command that would need more memory than the machine has is refused with one line
(exit 2) before it starts, instead of being killed by the kernel's out-of-memory killer
half-way (a 9400 x 9500 PNG took `restore` to 16.6 GB in 90 s). The estimates count the
big arrays each command holds at its peak and err high; they are not measurements.

Available memory: ``MemAvailable`` of /proc/meminfo, lowered to the room left under a
cgroup v2 limit (``memory.max - memory.current``) when the process has one (containers).
``IPT_MS_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix: ``2G``, ``512M``) replaces it,
to test the refusals or to keep a command under a budget; ``off`` (or ``0``) disables the
checks.

Calibration (tiny model, CPU, graph mode; `/usr/bin/time` peak RSS): `restore` of a 512 x 512
PNG, x2, was 1.07 GB with the official protocol (1,600 tiles) and 0.74 GB with zoo (196
tiles); the 0.33 GB between them is what the tile arrays and the assembly take here
(estimated 0.32 GB), and ~0.75 GB is the runtime itself (Python, MindSpore, the compiled
graph), counted as RUNTIME_BYTES. Graph mode on CPU keeps ~0.2 GB per 48 x 48 tile of the
full model's intermediates (`ipt_ms.inference.CPU_GRAPH_CALL_TILES`); `activation_bytes`
gives 0.28 GB for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ipt_ms.errors import IPTError

MEMORY_ENV = "IPT_MS_MEMORY_LIMIT"
#: Python + MindSpore + a compiled graph, before any image (measured ~0.75 GB, see above)
RUNTIME_BYTES = 768 << 20
#: the estimate must stay under this share of the available memory (the page cache, other processes)
HEADROOM = 0.9
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Available:
    """Bytes a command may use, and where the number came from (said in the refusal)."""

    bytes: int | None  # None: checks disabled
    source: str


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5G', '1048576' -> bytes; IPTError naming the variable otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise IPTError(f"{MEMORY_ENV}={text!r} is not a size: give bytes or a number with K, M, G or T "
                       "(e.g. 8G), or off")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def available_memory() -> Available:
    """What this process may allocate: IPT_MS_MEMORY_LIMIT, else MemAvailable (and a cgroup's room)."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        if text.lower() in ("off", "0"):
            return Available(None, f"{MEMORY_ENV}=off")
        return Available(parse_size(text), f"{MEMORY_ENV}={text}")
    found: list[tuple[int, str]] = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
                    break
    except (OSError, ValueError, IndexError):
        pass
    room = _cgroup_room()
    if room is not None:
        found.append((room, "room under this cgroup's memory.max"))
    if not found:
        return Available(None, "unknown (no /proc/meminfo)")
    return Available(*min(found))


def _cgroup_room() -> int | None:
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text().strip()))
    except (OSError, ValueError, StopIteration):
        return None


def gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 28 else f"{n / (1 << 20):.0f} MB"


def check_fits(needed: int, what: str, advice: str = "") -> None:
    """IPTError (one line, exit 2) when `needed` bytes exceed the available memory (with headroom)."""
    available = available_memory()
    if available.bytes is None or needed <= HEADROOM * available.bytes:
        return
    raise IPTError(f"{what} needs about {gib(needed)} of memory, but {gib(available.bytes)} is available "
                   f"({available.source}); refused before starting" + (f": {advice}" if advice else "")
                   + f" (estimate; {MEMORY_ENV}=off skips the check)")


# ------------------------------------------------------------------------------- estimates
def activation_bytes(spec, scale: int) -> int:
    """Float32 intermediates of one tile through the network (head/tail convs, transformer)."""
    out_side = spec.patch_size * scale
    convs = out_side * out_side * spec.n_feats * 16
    tokens = spec.num_patches * spec.embedding_dim * spec.num_layers * 2 * 12
    attention = spec.num_heads * spec.num_patches ** 2 * spec.num_layers * 2 * 2
    return 4 * (convs + tokens + attention)


def restore_bytes(height: int, width: int, spec, *, scale: int, protocol: str, call_tiles: int,
                  self_ensemble: bool = False, channels: int = 3) -> int:
    """Peak memory of restoring one H x W image (besides the runtime, weights and other images).

    `ipt_ms.tiling.tiled_forward` cuts every tile of the image at once and keeps every
    output tile until it assembles them: float32 inputs and outputs for all tiles, the
    float32 image and its padded copy, the assembly buffers (~4 output-sized arrays), the
    float64 written copy, and one call's activations."""
    from ipt_ms.tiling import get_protocol

    patch = spec.patch_size
    ph, pw = max(height, patch), max(width, patch)
    tiles = len(get_protocol(protocol).origins(ph, pw, patch))
    tile_in = tiles * channels * patch * patch * 4
    tile_out = tile_in * scale * scale
    image = channels * ph * pw * 4 * 2
    output = channels * ph * scale * pw * scale
    total = tile_in + tile_out + image + output * (4 * 4 + 8 + 1)
    if self_ensemble:
        total += output * 4 * 2
    # a call never holds more tiles than the image has (MindSpore pads a short one to a power of two)
    per_call = min(call_tiles, 1 << max(tiles - 1, 0).bit_length())
    return total + per_call * activation_bytes(spec, scale)


def weights_bytes(spec) -> int:
    """The weights as numpy arrays, as framework parameters, and one more copy while loading."""
    return 3 * 4 * spec.num_parameters()


def compare_bytes(values: int) -> int:
    """`ipt_ms.compare.compare_arrays` of two arrays of `values` numbers each: float64 A and B,
    the difference and its absolute value and the finite mask (float64/bool), two int16 8-bit
    copies and their difference: about 60 bytes per value."""
    return values * 60


def synth_bytes(values: int) -> int:
    """`ipt-ms synth` of one photo of `values` numbers (H x W x 3): float64 working copies of the
    clean image, its degraded versions and the MATLAB resize passes, about 24 bytes per value
    (measured 5.5 GB for a 9400 x 9500 photo: 20.5 bytes per value)."""
    return values * 24


def check_restore(images: list[tuple[str, int, int]], spec, *, scale: int, protocol: str, call_tiles: int,
                  held_bytes: int = 0, self_ensemble: bool = False, what: str = "restoring") -> None:
    """Refuse (one line) a restore whose largest image would not fit next to everything else.

    `images`: (name, height, width) of each input; `held_bytes`: the decoded inputs kept
    in memory meanwhile. Advises the zoo protocol when that one would fit."""
    if not images or available_memory().bytes is None:
        return
    fixed = RUNTIME_BYTES + weights_bytes(spec) + held_bytes

    def need(name_h_w, proto: str) -> int:
        _, h, w = name_h_w
        return fixed + restore_bytes(h, w, spec, scale=scale, protocol=proto, call_tiles=call_tiles,
                                     self_ensemble=self_ensemble)

    worst = max(images, key=lambda item: item[1] * item[2])
    needed = need(worst, protocol)
    advice = "crop or split the image, or use a machine with more memory"
    if protocol != "zoo":
        zoo = need(worst, "zoo")
        available = available_memory().bytes
        if zoo <= HEADROOM * available:
            advice = f"--protocol zoo needs about {gib(zoo)} (7-9x fewer tiles); or {advice}"
    check_fits(needed, f"{what} {worst[0]} ({worst[2]}x{worst[1]}, x{scale}, --protocol {protocol}, every tile "
               "held at once)", advice)


#: Python + NumPy + Pillow/OpenCV for the commands that do not load a network (compare, synth)
PYTHON_BYTES = 192 << 20


def values_in(path: os.PathLike | str) -> int | None:
    """Numbers an image (as H x W x 3) or .npy array holds, from its header; None if unreadable
    (the command's own reader then names the problem)."""
    import numpy as np

    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            return int(np.prod(np.load(path, mmap_mode="r", allow_pickle=False).shape))
        from ipt_ms.data.imageio import image_header

        header = image_header(path)
        return header.height * header.width * 3
    except (IPTError, OSError, ValueError, EOFError):
        return None


def check_compare(a: os.PathLike | str, b: os.PathLike | str) -> None:
    """Refuse (one line) a comparison of two files too big for the available memory."""
    values = max(v for v in (values_in(a), values_in(b), 0) if v is not None)
    if values:
        check_fits(PYTHON_BYTES + compare_bytes(values), f"comparing {a} with {b} ({values:,} values each)",
                   "compare smaller crops")


def check_synth(paths: list) -> None:
    """Refuse (one line) a synth whose largest photo would not fit; photos are done one at a time."""
    sized = [(values_in(p) or 0, p) for p in paths]
    if not sized:
        return
    values, path = max(sized, key=lambda item: item[0])
    if values:
        check_fits(PYTHON_BYTES + synth_bytes(values), f"degrading {path} ({values // 3:,} pixels)",
                   "downscale or crop the photo first")


def check_make_weights(spec) -> None:
    """Refuse (one line) initialising more parameters than fit: the float32 state, float64
    random draws of the largest tensors and the copy the writer makes, ~16 bytes each, plus
    PyTorch (~0.3 GB), which the writers import."""
    params = spec.num_parameters()
    check_fits(PYTHON_BYTES + (320 << 20) + 16 * params,
               f"initialising {params:,} parameters (n_feats {spec.n_feats}, {spec.num_layers}+{spec.num_layers} "
               "layers)", "choose a smaller --n-feats or --num-layers")
