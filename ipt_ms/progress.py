"""Progress display on stderr (tqdm): on a terminal, off with -q, forced with IPT_MS_PROGRESS=1.

Two shapes of long work:

* `progress_bar`: a loop over countable things; the unit says what is counted
  (``tile``, ``img``, ``tensor``), never an internal batch.
* `StepProgress`: a few named steps of unknown length (read weights, compile, trace,
  write). The line names the running step and its elapsed time keeps moving while a
  single call runs for a minute (a graph compile, an ONNX export), so the command never
  looks hung.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable

#: "1" shows progress even when stderr is not a terminal (a log file), "0" never shows it
PROGRESS_ENV = "IPT_MS_PROGRESS"


def progress_wanted(enable: bool = True) -> bool:
    """Progress is drawn on a terminal only, unless IPT_MS_PROGRESS says otherwise: in a pipe
    or a captured stream its frames would bury the output (and a one-line error under them)."""
    if not enable:
        return False
    forced = os.environ.get(PROGRESS_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def progress_bar(iterable: Iterable, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enable: bool = True, **kwargs):
    """Wrap `iterable` in a tqdm bar when enabled (see `progress_wanted`) and tqdm is importable."""
    if not progress_wanted(enable):
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)


def counter(total: int, *, desc: str = "", unit: str = "it", enable: bool = True, **kwargs):
    """A manual tqdm counter (`.update(n)`, `.close()`); a do-nothing object when disabled."""
    if not progress_wanted(enable):
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _Silent()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class StepProgress:
    """`desc, step k/n: name [elapsed]` on stderr, refreshed every `interval` s while a step runs.

        with StepProgress("parity", 4, enable=not quiet) as steps:
            steps.start("reading weights")
            ...
            steps.start("MindSpore forward (first call compiles)")

    Each `start` finishes the previous step. Disabled, it does nothing (no thread).
    """

    def __init__(self, desc: str, total: int, *, enable: bool = True, interval: float = 0.5):
        self.total, self.done = total, 0
        self.bar = counter(total, desc=desc, unit="step", enable=enable, bar_format="{desc}{postfix} [{elapsed}]")
        self._enabled = enable and not isinstance(self.bar, _Silent)
        self._stop = threading.Event()
        self._thread = None
        self._started: float | None = None
        self._interval = interval
        self.timings: dict[str, float] = {}
        self._name: str | None = None

    def __enter__(self) -> StepProgress:
        if self._enabled:
            self._thread = threading.Thread(target=self._tick, name="ipt-ms-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _finish_current(self) -> None:
        if self._name is not None and self._started is not None:
            self.timings[self._name] = time.perf_counter() - self._started
            self.done += 1
            self.bar.update(1)
        self._name = None

    def start(self, name: str) -> None:
        """Finish the running step (if any) and show `name` as the current one."""
        self._finish_current()
        self._name, self._started = name, time.perf_counter()
        self.bar.set_postfix_str(f"step {self.done + 1}/{self.total}: {name}")

    def set_total(self, total: int) -> None:
        """Change the number of steps once it is known (e.g. after reading the weights)."""
        self.total = total
        if self._enabled:
            self.bar.total = total
            self.bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.bar.refresh()
            except Exception:  # pragma: no cover - a closed stream: stop refreshing
                return

    def close(self) -> None:
        self._finish_current()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self.bar.close()
