"""Stable, machine-independent random streams.

Every random draw in ``ipt_ms.data`` comes from a numpy ``Generator`` (PCG64) whose seed is
derived from integers and strings with fixed hash functions (BLAKE2b), never from Python's
salted ``hash()`` or from global state. So:

* the noise / rain / blur added to an image depends only on (seed, image name, purpose):
  evaluating a subset of a benchmark, or the images in another order, or on another
  machine, gives the same degraded inputs;
* a training batch depends only on (seed, epoch, batch index), which makes exact resume
  possible.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ipt_ms.errors import IPTError

__all__ = ["SEED_MAX", "check_seed", "stable_hash", "rng_from", "image_rng"]

_MASK64 = (1 << 64) - 1

#: Largest seed any option accepts (seeds are 0 .. 2**32 - 1 everywhere: NumPy's legacy
#: RandomState and MindSpore's set_seed take 32-bit seeds, so one range serves every command).
SEED_MAX = 2**32 - 1


def check_seed(value: int, what: str = "seed") -> int:
    """`value` as an int if it is a whole number in 0..SEED_MAX; IPTError naming `what` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= SEED_MAX:
        raise IPTError(f"{what} must be an integer from 0 to {SEED_MAX} (2**32 - 1), got {value!r}")
    return int(value)


def stable_hash(text: str) -> int:
    """64-bit hash of a string that is identical in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _word(part: int | str) -> int:
    if isinstance(part, str):
        return stable_hash(part)
    if isinstance(part, (bool, np.bool_)):
        return int(part)
    value = int(part)
    if value < 0:
        raise IPTError(f"seeds must be non-negative integers, got {value}")
    return value & _MASK64


def rng_from(*parts: int | str) -> np.random.Generator:
    """A PCG64 generator seeded from a tuple of non-negative ints and/or strings."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([_word(p) for p in parts])))


def image_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    """The generator for one degradation of one image (``purpose``: the task kind,
    "denoise", "derain" or "deblur").

    ``name`` is the image's name inside its dataset (file stem, or relative path without
    extension for nested layouts); the purpose keeps e.g. the rain of an image independent
    of its noise. The noise field does not depend on sigma: sigma 30 and 50 versions of an
    image share one N(0, 1) draw scaled differently (as DnCNN-style per-image seeding does).
    """
    return rng_from(int(seed), "image", purpose, name)
