"""One stage's numbers and verdict: the parity rule itself (`parity.compare` runs it).

Statistics of a candidate's stage against a reference (max abs/rel error, cosine, the
channel offset), the end-to-end float32-floor rule and the stage-alone rule; see
`parity.compare` for how the runs behind them are made and docs/parity.md for why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ipt_ms.errors import IPTError

DEFAULT_STAGE_TOL = 1e-5
DEFAULT_OUTPUT_TOL = 1e-4
DEFAULT_FLOOR_FACTOR = 4.0
#: extra PyTorch float32 runs, on inputs moved by up to one ulp, behind each floor
DEFAULT_DRAWS = 3
#: float32's unit roundoff: no stage can be asked to round better than this
FLOAT32_ROUNDOFF = 2.0 ** -24


@dataclass
class StageDiff:
    """One stage's numbers. `local_*`: the stage alone (the verdict); the rest: end to end."""

    name: str
    shape: tuple[int, ...]
    max_abs_err: float  # end to end, candidate vs PyTorch float32
    max_rel_err: float
    cosine: float
    tolerance: float  # fixed tolerance on max_rel_err (no float64 run; the output end to end)
    ms_vs_fp64: float | None = None  # end to end, candidate vs PyTorch float64
    fp32_floor: float | None = None  # end to end, PyTorch float32 vs float64 (worst draw)
    floor_factor: float = DEFAULT_FLOOR_FACTOR
    local_err: float | None = None  # this stage alone: candidate vs float64, same float32 inputs
    local_floor: float | None = None  # this stage alone: PyTorch float32's rounding (worst draw, >= 2^-24)
    local_offset: float | None = None  # this stage alone: `channel_offset` of the candidate vs float64
    offset_floor: float | None = None  # the same for PyTorch float32 (worst draw, >= 2^-24)
    end_to_end: bool = False  # also judged end to end (the output)

    @property
    def within_tolerance(self) -> bool:
        return bool(np.isfinite(self.max_rel_err)) and self.max_rel_err <= self.tolerance

    @property
    def within_floor(self) -> bool:
        """End to end, MindSpore is as close to float64 as PyTorch float32 is (up to floor_factor)."""
        if self.ms_vs_fp64 is None or self.fp32_floor is None or not np.isfinite(self.ms_vs_fp64):
            return False
        return self.ms_vs_fp64 <= self.floor_factor * self.fp32_floor

    @property
    def floor_limit(self) -> float | None:
        """The end-to-end float32-floor rule's bound on `ms_vs_fp64`."""
        return None if self.fp32_floor is None else self.floor_factor * self.fp32_floor

    @property
    def is_local(self) -> bool:
        """Whether the stage was also computed alone (then that decides)."""
        return self.local_err is not None and self.local_floor is not None

    @property
    def local_limit(self) -> float | None:
        return None if self.local_floor is None else self.floor_factor * self.local_floor

    @property
    def local_ratio(self) -> float | None:
        """The worse of own error / float32 rounding and own offset / float32's offset (<= floor_factor passes)."""
        if not self.is_local:
            return None
        ratios = [self.local_err / self.local_floor]
        if self.local_offset is not None and self.offset_floor:
            ratios.append(self.local_offset / self.offset_floor)
        return max(ratios)

    @property
    def within_local(self) -> bool:
        ratio = self.local_ratio
        return ratio is not None and bool(np.isfinite(ratio)) and ratio <= self.floor_factor

    @property
    def end_to_end_ok(self) -> bool:
        return self.within_tolerance or self.within_floor

    @property
    def ok(self) -> bool:
        if self.is_local:
            return self.within_local and (self.end_to_end_ok or not self.end_to_end)
        return self.end_to_end_ok

    @property
    def passed_by(self) -> str | None:
        """'local' (the stage alone), 'tolerance' or 'floor' (end to end), or None (failed)."""
        if not self.ok:
            return None
        if self.is_local:
            return "local"
        return "tolerance" if self.within_tolerance else "floor"


def _errors(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(max abs err, max abs err / max |reference|, cosine), in float64."""
    a, b = candidate.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / norm) if norm > 0 else (1.0 if max_abs == 0 else 0.0)
    return max_abs, max_rel, cosine


def _rel(candidate: np.ndarray, reference: np.ndarray) -> float:
    return _errors(candidate, reference)[1]


def channel_offset(candidate: np.ndarray, reference: np.ndarray) -> float:
    """max over channels of |mean error over every position| / RMS of the reference.

    A wrong weight or bias moves a channel the same way at every position, so its mean
    error stays; rounding errors have random signs and average away over the positions
    (256 tokens of a full-size model). A 1 % change of a decoder bias hides under the
    max error of a stage whose attention is sharp, but not here. Channels: axis 1 of
    (B, C, H, W) images, the last axis of (L, B, E) tokens."""
    error = candidate.astype(np.float64) - reference
    channel = error.ndim - 1 if error.ndim == 3 else min(1, error.ndim - 1)
    positions = tuple(i for i in range(error.ndim) if i != channel)
    scale = float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) if reference.size else 0.0
    offset = float(np.max(np.abs(error.mean(axis=positions)))) if error.size else 0.0
    return offset / scale if scale > 0 else (0.0 if offset == 0 else float("inf"))


@dataclass
class LocalRuns:
    """Every stage computed alone from the same float32 inputs (see the module docstring)."""

    candidate: dict[str, np.ndarray]  # MindSpore (or the framework under test)
    exact: dict[str, np.ndarray]  # the float64 twin
    fp32_draws: list[dict[str, np.ndarray]]  # PyTorch float32: the given inputs, then nudged ones


def diff_arrays(name: str, candidate: np.ndarray, reference: np.ndarray, tolerance: float,
                reference_fp64: np.ndarray | None = None, floor_factor: float = DEFAULT_FLOOR_FACTOR,
                fp32_draws: list[np.ndarray] | None = None) -> StageDiff:
    """Compare one stage end to end (candidate = MindSpore, reference = PyTorch float32).

    `fp32_draws`: more PyTorch float32 runs (on nudged inputs) whose worst distance from
    float64 makes the float32 floor together with `reference`'s."""
    if candidate.shape != reference.shape:
        raise IPTError(f"stage {name}: MindSpore shape {candidate.shape} != PyTorch shape {reference.shape}")
    max_abs, max_rel, cosine = _errors(candidate, reference)
    ms_vs_fp64 = floor = None
    if reference_fp64 is not None:
        ms_vs_fp64 = _rel(candidate, reference_fp64)
        floor = max(_rel(run, reference_fp64) for run in [reference, *(fp32_draws or [])])
    return StageDiff(name, tuple(reference.shape), max_abs, max_rel, cosine, tolerance, ms_vs_fp64, floor,
                     floor_factor)


def judge_alone(diff: StageDiff, local: LocalRuns) -> StageDiff:
    """`diff` with its stage-alone numbers; the verdict is then taken on them."""
    name = diff.name
    exact = local.exact[name]
    floor = max([FLOAT32_ROUNDOFF] + [_rel(run[name], exact) for run in local.fp32_draws])
    offset_floor = max([FLOAT32_ROUNDOFF] + [channel_offset(run[name], exact) for run in local.fp32_draws])
    return dataclasses.replace(diff, local_err=_rel(local.candidate[name], exact), local_floor=floor,
                               local_offset=channel_offset(local.candidate[name], exact), offset_floor=offset_floor,
                               end_to_end=name == "output")


def compare_stages(ms_out: dict[str, np.ndarray], torch_out: dict[str, np.ndarray], names: list[str],
                   stage_tol: float, output_tol: float, torch_fp64: dict[str, np.ndarray] | None = None,
                   floor_factor: float = DEFAULT_FLOOR_FACTOR, fp32_draws: list[dict[str, np.ndarray]] | None = None,
                   local: LocalRuns | None = None) -> list[StageDiff]:
    """Every stage end to end; with `local`, each also alone (which then decides)."""
    missing = [n for n in names if n not in ms_out or n not in torch_out]
    if missing:
        raise IPTError(f"stages missing from a framework's trace: {missing}")
    diffs = [diff_arrays(n, ms_out[n], torch_out[n], output_tol if n == "output" else stage_tol,
                         None if torch_fp64 is None else torch_fp64[n], floor_factor,
                         [run[n] for run in fp32_draws or []]) for n in names]
    return diffs if local is None else [judge_alone(d, local) for d in diffs]


def compare_available(candidate: dict[str, np.ndarray], torch_out: dict[str, np.ndarray], names: list[str],
                      stage_tol: float, output_tol: float, torch_fp64: dict[str, np.ndarray] | None = None,
                      floor_factor: float = DEFAULT_FLOOR_FACTOR,
                      fp32_draws: list[dict[str, np.ndarray]] | None = None) -> list[StageDiff]:
    """Like `compare_stages`, end to end, for a framework that exposes only some stages (it must
    give the output)."""
    if "output" not in candidate:
        raise IPTError("the third framework's trace has no 'output'")
    unknown = sorted(set(candidate) - set(names))
    if unknown:
        raise IPTError(f"the third framework reports stages this architecture does not have: {unknown}")
    present = [n for n in names if n in candidate]
    return compare_stages(candidate, torch_out, present, stage_tol, output_tol, torch_fp64, floor_factor, fp32_draws)
