"""Progress bars (tqdm on stderr), switchable off for tests and pipes."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def progress_bar(iterable: Iterable, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enable: bool = True, **kwargs):
    """Wrap `iterable` in a tqdm bar when enabled and tqdm is importable."""
    if not enable:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)
