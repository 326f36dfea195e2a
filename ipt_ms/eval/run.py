"""One call per command: `run_eval` (ipt-ms eval) and `run_parity_bench` (ipt-ms parity-bench).

Order of work, so bad input costs nothing and writes nothing: options, weights and data
folder exist -> benchmark sets located and every file header checked -> model(s) loaded
-> output folder created -> images evaluated (log appended per image) -> reports written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipt_ms.convert.weights import check_regular_file
from ipt_ms.errors import CONTROL_CHARACTER, IPTError, ToleranceExceededError
from ipt_ms.eval.engine import (
    EvalSettings,
    Runner,
    create_runner,
    evaluate,
    is_task_name,
    summarize,
    weights_name,
)
from ipt_ms.eval.parity_bench import ParityBenchResult, parity_bench
from ipt_ms.eval.report import write_eval_reports
from ipt_ms.eval.sets import EvalSet, default_sets, load_sets
from ipt_ms.fileio import check_output_dir, ensure_writable_dir
from ipt_ms.tasks import parse_task

__all__ = ["EvalRequest", "EvalOutcome", "run_eval", "run_parity_bench"]


@dataclass
class EvalRequest:
    """Options common to `ipt-ms eval` and `ipt-ms parity-bench`."""

    weights: str
    task: str
    data: str
    sets: list[str] | None = None
    protocol: str = "official"
    self_ensemble: bool = False
    batch_size: int = 64
    device: str = "auto"
    mode: str = "graph"
    limit: int | None = None
    seed: int = 0
    clip: bool = True
    lr: str = "files"
    shave: int | None = None
    ssim: bool = True
    allow_mixed_modes: bool = False
    allow_unfinished_synth: bool = False
    out: str | None = None
    save_images: bool = False
    restart: bool = False
    progress: bool = True
    levers: str | None = None  # CPU levers (`ipt_ms.levers`): stored, trial, default; None: $IPT_MS_LEVERS
    overrides: dict = field(default_factory=dict)

    def check(self) -> None:
        from ipt_ms.tiling import get_protocol

        get_protocol(self.protocol)
        if self.levers is not None:
            from ipt_ms.levers import parse_policy

            parse_policy(self.levers, "levers")
        if self.batch_size < 1:
            raise IPTError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.lr not in ("files", "generate", "auto"):
            raise IPTError(f"--lr must be files, generate or auto, got {self.lr!r}")
        if self.shave is not None and self.shave < 0:
            raise IPTError(f"--shave must be >= 0, got {self.shave}")
        check_regular_file(self.weights)
        if not Path(self.data).is_dir():
            if Path(self.data).exists():
                raise IPTError(f"data folder {self.data} is a file, not a folder")
            raise IPTError(f"data folder not found: {self.data}")
        if self.out is not None:
            check_output_dir(self.out)  # before any model loads; created when the first result is logged

    def settings(self, task_name: str) -> EvalSettings:
        return EvalSettings(task=task_name, protocol=self.protocol, self_ensemble=self.self_ensemble,
                            seed=self.seed, clip=self.clip, lr=self.lr, shave=self.shave, ssim=self.ssim)

    def load_sets(self, task_name: str) -> list[EvalSet]:
        task = parse_task(task_name)
        names = self.sets or default_sets(task)
        return load_sets(self.data, names, task, seed=self.seed, clip=self.clip, lr=self.lr, limit=self.limit,
                         allow_mixed_modes=self.allow_mixed_modes,
                         allow_unfinished_synth=self.allow_unfinished_synth)

    def runner(self, framework: str, weights: str | None = None) -> Runner:
        return create_runner(framework, weights or self.weights, self.task, batch_size=self.batch_size,
                             device=self.device, mode=self.mode, progress=self.progress, levers=self.levers,
                             **self.overrides)

    def default_out(self, what: str, runners: list[Runner]) -> Path:
        """eval-results/<weights name>-<digest>-<task>-<what>-<protocol>[-x8] (`weights_name`: the run
        folder joins a generic stem, run-model-...): the weights' content
        digest (8 hex digits; two if the runners' weights differ) keeps two runs that both export
        `model.ckpt` apart."""
        ensemble = "-x8" if self.self_ensemble else ""
        digest = "+".join(dict.fromkeys(r.weights_id[:8] for r in runners))
        name = Path(weights_name(self.weights, printable=False)).with_suffix("").as_posix().replace("/", "-")
        name = CONTROL_CHARACTER.sub("_", name)  # a newline or ESC in the weights' name stays out of the folder's
        return Path("eval-results") / f"{name}-{digest}-{runners[0].task}-{what}-{self.protocol}{ensemble}"


@dataclass
class EvalOutcome:
    """Paths written and the tables printed by `run_eval`."""

    out_dir: Path
    records: list[dict]
    paths: list[Path]
    printed: str


def _prepare(request: EvalRequest, frameworks: list[tuple[str, str | None]]) -> tuple[list[EvalSet], list[Runner]]:
    """Sets first when the task is named (no model load for bad data), then the runners."""
    request.check()
    sets = request.load_sets(request.task) if is_task_name(request.task) else None
    runners = [request.runner(fw, weights) for fw, weights in frameworks]
    names = {r.task for r in runners}
    if len(names) > 1:
        raise IPTError(f"the weights disagree on the task: {', '.join(sorted(names))}")
    task_name = runners[0].task
    if sets is None:
        sets = request.load_sets(task_name)
    return sets, runners


def run_eval(request: EvalRequest, framework: str = "mindspore") -> EvalOutcome:
    """`ipt-ms eval`: evaluate one weights file on benchmark sets; write report.md/.json and CSVs."""
    from ipt_ms.provenance import warn_if_seeded

    sets, runners = _prepare(request, [(framework, None)])
    warn_if_seeded(request.weights, getattr(runners[0].predictor, "provenance", None))  # before the (long) evaluation
    settings = request.settings(runners[0].task)
    out_dir = ensure_writable_dir(request.out or request.default_out(runners[0].label, runners))
    records = evaluate(sets, runners, settings, out_dir, save_images=request.save_images,
                       progress=request.progress, restart=request.restart)
    set_names = [s.name for s in sets]
    summary = summarize(records, set_names, [runners[0].label])
    title = (f"IPT evaluation: {settings.task}, {weights_name(runners[0].weights)} ({runners[0].weights_id[:8]}) "
             f"in {runners[0].label}")
    paths, printed = write_eval_reports(out_dir, title, settings, runners, set_names, records, summary)
    return EvalOutcome(out_dir, records, paths, printed)


def run_parity_bench(request: EvalRequest, frameworks: tuple[str, str] = ("mindspore", "torch"),
                     first_weights: str | None = None, tolerance: float = 0.01,
                     max_rel: float | None = None) -> ParityBenchResult:
    """`ipt-ms parity-bench`: the same evaluation in two frameworks; raises ToleranceExceededError
    (exit code 1) after writing the reports when any |dPSNR| exceeds `tolerance`."""
    from ipt_ms.predictors import normalise_framework

    names = [normalise_framework(f) for f in frameworks]
    if len(names) != 2 or names[0] == names[1]:
        raise IPTError(f"parity-bench needs two different frameworks, got {', '.join(frameworks)}")
    if first_weights is not None:
        check_regular_file(first_weights)
    sets, runners = _prepare(request, [(names[0], first_weights), (names[1], None)])
    settings = request.settings(runners[0].task)
    out_dir = ensure_writable_dir(request.out or request.default_out("parity", runners))
    limit = {} if max_rel is None else {"max_rel": max_rel}
    result = parity_bench(sets, runners, settings, out_dir, tolerance=tolerance, save_images=request.save_images,
                          progress=request.progress, restart=request.restart, **limit)
    return result


def raise_on_failure(result: ParityBenchResult) -> None:
    """Exit code 1 (one line) when the parity benchmark exceeded its tolerance."""
    if not result.ok:
        raise ToleranceExceededError(result.failure_message())
