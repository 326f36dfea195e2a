"""How busy the rest of the machine was while a benchmark job ran, and whether figures may be written.

Timings on a shared CPU flatter or punish whichever framework ran while someone else's job
did. The load average cannot tell: it counts the benchmark's own threads. So every job is
metered directly: CPU time the whole machine spent busy (/proc/stat) minus the CPU time of
the benchmark's own process tree, per second of the job = the cores other processes kept
busy ("others").

`bench/run.py` and `bench/train_step.py` refuse to write BENCHMARKS.md when others exceeded
`OTHERS_LIMIT` of the machine in any job (or in a short check before starting); with
``--allow-loaded`` they write, and the section says in bold that it was measured loaded.
"""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: share of the machine's CPU time other processes may take during any job of a run whose
#: figures go into BENCHMARKS.md (2 cores: 0.1 core)
OTHERS_LIMIT = 0.05
REFUSED_EXIT = 3


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat); nan elsewhere."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished (waited-for) children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def memory_mib(field_name: str = "VmHWM") -> float:
    """This process's VmHWM (peak) or VmRSS in MiB (Linux); ru_maxrss elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cores() -> int:
    return os.cpu_count() or 1


class OthersMeter:
    """``with OthersMeter() as m: run_and_wait_for_child()`` then ``m.cores`` = other processes' cores."""

    def __enter__(self) -> OthersMeter:
        self.busy, self.own, self.start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        self.cores = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        others = (busy_cpu_seconds() - self.busy - (own_cpu_seconds() - self.own)) / seconds
        self.cores = max(others, 0.0) if others == others else others


def sample_others(seconds: float = 2.0) -> float:
    """Cores other processes keep busy right now (this process sleeps meanwhile)."""
    with OthersMeter() as meter:
        time.sleep(seconds)
    return meter.cores


@dataclass
class Verdict:
    """Whether a run's figures may go into BENCHMARKS.md."""

    worst_cores: float
    limit_cores: float

    @property
    def quiet(self) -> bool:
        # nan (no /proc/stat) counts as unknown, hence not quiet
        return self.worst_cores == self.worst_cores and self.worst_cores <= self.limit_cores

    def describe(self) -> str:
        share = self.worst_cores / cores()
        return (f"other processes kept {self.worst_cores:.2f} cores busy ({100 * share:.0f}% of {cores()}) in the "
                f"busiest job; the limit for BENCHMARKS.md is {100 * OTHERS_LIMIT:.0f}% "
                f"({self.limit_cores:.2f} cores)")


def verdict(others: list[float]) -> Verdict:
    """The verdict for a run whose jobs measured these `others` values (cores)."""
    worst = max(others) if others else float("nan")
    if any(x != x for x in others):
        worst = float("nan")
    return Verdict(worst, OTHERS_LIMIT * cores())


def loaded_banner(v: Verdict) -> str:
    """The line a section gets when written from a loaded run (``--allow-loaded``)."""
    return f"**LOADED: measured while {v.describe()}. These figures are not comparable; re-run on an idle machine.**"


_scratch: list[str] = []


def scratch_dir() -> str:
    """A private working folder for benchmark children, removed when this process exits.

    MindSpore writes build leftovers (akg_kernel_meta/, kernel_build_tmp.key, rank_0/) into
    its working directory; a child started there leaves nothing in the repository."""
    if not _scratch:
        _scratch.append(tempfile.mkdtemp(prefix="ipt-bench-"))
        atexit.register(shutil.rmtree, _scratch[0], True)
    return _scratch[0]


def section_heading(base: str) -> str:
    """`base` ("## Inference") with the CPU model and oneDNN ISA: BENCHMARKS.md keeps one section
    per CPU kind, so a run on another kind of CPU adds its own."""
    from ipt_ms import machine

    return f"{base}: {machine.heading()}"
