"""The IPT training loop: pre-training (several tasks, one per batch) and fine-tuning.

    from ipt_ms.train import load_train_config, train
    result = train(load_train_config("configs/tiny.yaml"))

Per optimizer step the loop sets the learning rate of the step
(`ipt_ms.train.schedules`), runs `TrainStep` on the step's batch (split into
`train.accumulate` micro-batches), updates the weight averages (`ipt_ms.train.ema`),
then calls out at fixed points (`ipt_ms.train.callbacks`): the logging sinks
(`ipt_ms.train.sinks`) every `output.log_every` steps, validation
(`ipt_ms.train.validation`) every `val.every` steps, a checkpoint every
`output.checkpoint_every` steps. After each step it asks whether SIGINT/SIGTERM
arrived (`ipt_ms.signals`; all data-parallel ranks agree on it); if so it writes a
checkpoint at that step and stops. A resumed run restores weights, Adam state, loss
scale, weight averages, the best validation scores, RNG states and the data position,
so its losses equal those of an uninterrupted run (`ipt_ms.train.resume`).

What the loop calls lives beside it: building the cells (`build`), resume checks (`resume`),
the run folder's rules (`run_folder`), the step bar (`step_bar`), the result record
(`result`). What is left here is one idea -- the order of a run's steps and call-outs, set-up
to end -- which is why it stays one file of a little over 400 lines.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ipt_ms.config import ConfigError, to_dict
from ipt_ms.errors import IPTError
from ipt_ms.train.build import amp_level, build_training
from ipt_ms.train.callbacks import Callback
from ipt_ms.train.checkpoint import (
    TrainState,
    capture_rng,
    checkpoint_step,
    data_fingerprint,
    latest_checkpoint,
    lineage_before,
    restore_rng,
    save_checkpoint,
)
from ipt_ms.train.config import TrainConfig
from ipt_ms.train.distributed import DistInfo, any_rank, barrier, init_distributed
from ipt_ms.train.metrics import plot_loss_curves
from ipt_ms.train.result import CHECKPOINT_DIR, PLOT_FILE, NonFiniteLossError, TrainResult
from ipt_ms.train.resume import assign_parameters, check_resumable, check_same_data, resolve_resume
from ipt_ms.train.run_folder import check_export_target, claim_run_folder, refuse_run_dir_in_data, write_run_config
from ipt_ms.train.sinks import METRICS_FILE, RecordCollector, open_sinks
from ipt_ms.train.step_bar import StepBar

log = logging.getLogger("ipt_ms.train")


class Trainer:
    """One training run: builds the network, optimiser and data, then steps through them.

    Args:
        cfg: a validated `TrainConfig`.
        resume: True/"latest" (newest checkpoint of `output.dir`), a checkpoint file or a
            run directory; None starts fresh (and refuses a directory that has checkpoints).
        source_factory: `(world_size, rank) -> batch source`, to train on something other
            than what `data` describes (tests, custom data); it must follow the
            `ipt_ms.data.pretrain.BatchSource` interface.
        quiet: no progress bar.
        callbacks: `Callback`s called on every rank at the loop's fixed points.
    """

    def __init__(self, cfg: TrainConfig, resume: str | bool | None = None,
                 source_factory: Callable[[int, int], object] | None = None, quiet: bool = False,
                 callbacks: Sequence[Callback] = ()):
        self.cfg = cfg
        self.resume = resume
        self.source_factory = source_factory
        self.quiet = quiet
        self.callbacks = list(callbacks)
        self._ready = False
        self._sinks: list[Callback] = []

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything (network, optimiser, data; restore a checkpoint). `run` calls
        it; call it first to inspect the starting state."""
        if self._ready:
            return
        collect = RecordCollector()  # start-up warnings (unreadable or grayscale images) also go to train.log
        logging.getLogger("ipt_ms").addHandler(collect)
        try:
            self._setup()
        except BaseException:
            self.release()
            raise
        finally:
            logging.getLogger("ipt_ms").removeHandler(collect)
        self._setup_records = collect.records
        self._ready = True

    def _setup(self) -> None:
        import mindspore as ms

        from ipt_ms.runtime import configure
        from ipt_ms.train.weights import initial_weights

        cfg = self.cfg
        self.device = configure(cfg.train.device, cfg.train.mode)
        if cfg.train.compile_cache is not None:
            from ipt_ms import compile_cache

            compile_cache.set_cache_dir(cfg.train.compile_cache)
        self.dist: DistInfo = init_distributed()
        self.run_dir = Path(cfg.output.dir)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        refuse_run_dir_in_data(self.run_dir, cfg)
        if self.dist.is_main:
            self._lock = claim_run_folder(self.run_dir, self.checkpoint_dir)
        resumed = resolve_resume(self.resume, self.checkpoint_dir)
        resume_path, saved = resumed if resumed is not None else (None, None)
        if saved is not None:
            check_resumable(saved[1], cfg, resume_path, self.dist.world_size, self.dist.is_main)
        elif latest_checkpoint(self.checkpoint_dir) is not None:
            raise IPTError(f"{str(self.run_dir)!r} already holds checkpoints of a run; pass --resume to continue "
                           "it, or choose another output.dir")
        check_export_target(self.run_dir, cfg, resumed=saved is not None, is_main=self.dist.is_main)

        # the data first: a wrong folder should fail before a 115M-parameter model is built
        self.spec = cfg.model.spec()
        self.validator = None
        self._build_data()

        seed = cfg.train.seed
        ms.set_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        init_state = None
        if saved is None:
            self.spec, init_state = initial_weights(cfg)
        built = build_training(cfg, self.spec, init_state, self.device, self.dist.distributed)
        self.net, self.amp, self.optimizer = built.net, built.amp, built.optimizer
        self.step_cell, self.ema, self._built = built.step_cell, built.ema, built
        self.task_names = list(self.spec.task_names)

        self.state = TrainState(steps_per_epoch=self.steps_per_epoch, world_size=self.dist.world_size,
                                config=to_dict(cfg), data=self.data_fingerprint)
        self.last_checkpoint: Path | None = None
        self.lineage: list[Path] = []
        if saved is not None:
            tensors, state, _ = saved
            check_same_data(state, self.state, cfg, resume_path, self.dist.is_main)
            for group, params in self._state_params().items():
                assign_parameters(params, tensors, group, resume_path)
            restore_rng(state.rng)
            self.state.global_step, self.state.epoch = state.global_step, state.epoch
            self.state.step_in_epoch, self.state.skipped_batches = state.step_in_epoch, state.skipped_batches
            self.state.best = dict(state.best)
            if self.validator is not None:
                self.validator.best = dict(state.best)
            self.last_checkpoint = resume_path
            self.lineage = lineage_before(resume_path)

    def _build_data(self) -> None:
        from ipt_ms.train.data import build_source, training_items
        from ipt_ms.train.validation import Validator, split_holdout

        cfg, held = self.cfg, None
        self.data_fingerprint = {}
        if self.source_factory is not None:
            if cfg.val.enabled and cfg.val.holdout:
                raise ConfigError("val.holdout: not available with a custom batch source; use val.data")
            self.source = self.source_factory(self.dist.world_size, self.dist.rank)
        else:
            items = training_items(cfg, self.spec)
            self.data_fingerprint = data_fingerprint(items, cfg.data.root)
            if cfg.val.enabled and cfg.val.holdout:
                items, held = split_holdout(items, cfg.val.holdout, cfg.train.seed)
                self.held_out = list(held.names) if hasattr(held, "names") else [Path(p).name for p in held]
            self.source = build_source(cfg, self.spec, self.dist.world_size, self.dist.rank, items=items)
        if cfg.val.enabled and self.dist.is_main:
            self.validator = Validator.build(cfg, self.spec, held, self.run_dir)
        self.steps_per_epoch = len(self.source)
        self.global_batch = self.source.batch_size * self.dist.world_size

    # ------------------------------------------------------------------ checkpoints and weights
    def _state_params(self) -> dict[str, list]:
        return self._built.state_groups()

    def _checkpoint_tensors(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for params in self._state_params().values() for p in params}

    def eval_weights(self) -> dict[str, np.ndarray] | None:
        """Parameters to use instead of the trained ones for validation and export (the EMA)."""
        return self.ema.arrays() if self.ema is not None else None

    def save(self) -> Path | None:
        """Write a checkpoint at the current position (rank 0; others return None)."""
        if not self.dist.is_main:
            return None
        self.state.rng = capture_rng()
        if self.validator is not None:
            self.state.best = dict(self.validator.best)
        self.last_checkpoint = save_checkpoint(self.checkpoint_dir, self._checkpoint_tensors(), self.state,
                                               self.spec.to_json(), self.cfg.output.keep_last, self.lineage,
                                               provenance=self.provenance())
        for cb in self._sinks + self.callbacks:
            cb.on_checkpoint(self, self.last_checkpoint)
        return self.last_checkpoint

    def last_checkpoint_step(self) -> int | None:
        return None if self.last_checkpoint is None else checkpoint_step(self.last_checkpoint)

    def provenance(self) -> dict:
        """What the run's checkpoints and exported weights record as their origin, now."""
        from ipt_ms.train.weights import run_provenance

        best = self.validator.best if self.validator is not None else self.state.best
        return run_provenance(self.cfg, self.state.global_step, best)

    def export(self) -> Path:
        from ipt_ms.train.weights import export_weights

        path = self.run_dir / self.cfg.output.export
        export_weights(self.net, self.spec, path, replace=self.eval_weights(), provenance=self.provenance(),
                       overwrite=True)
        return path

    def validate(self, result: TrainResult, stop) -> None:
        """Run the validation (rank 0), report it and keep the best weights."""
        from ipt_ms.train.weights import network_arrays

        if self.validator is None:
            return
        arrays = network_arrays(self.net)
        arrays.update(self.eval_weights() or {})
        report = self.validator.run(arrays, self.state.global_step, should_stop=lambda: stop.requested is not None)
        self._validated_at = self.state.global_step
        if report is None:
            return
        for path in self.validator.write_best(report, self.net, self.eval_weights()):
            log.debug("wrote %s", path)
        self.state.best = dict(self.validator.best)
        result.validation = report
        for cb in self._sinks + self.callbacks:
            cb.on_validation(self, report)

    # ------------------------------------------------------------------ loop
    def _open_sinks(self, result: TrainResult) -> list[Callback]:
        if not self.dist.is_main:
            return []
        write_run_config(self.run_dir, self.cfg)
        resumed = self.state.global_step if self.last_checkpoint is not None else 0
        sinks = open_sinks(self.cfg, self.run_dir, resumed, getattr(self, "_setup_records", ()),
                           console=not self.quiet and not self._bar_wanted())
        result.metrics = sinks[0].path
        return sinks

    def _bar_wanted(self) -> bool:
        """A tqdm step bar: rank 0, output.progress, not quiet, and a terminal (or
        IPT_MS_PROGRESS=1): in nohup/cluster logs its frames would bury the log lines."""
        from ipt_ms.progress import progress_wanted

        return self.dist.is_main and self.cfg.output.progress and not self.quiet and progress_wanted()

    def _start_details(self) -> str:
        """Second start line: where the run writes, what it starts from, what validates it, TensorBoard."""
        cfg = self.cfg
        held = getattr(self, "held_out", None)
        validation = ("off" if not cfg.val.enabled else f"held-out {', '.join(held)}" if held
                      else f"{cfg.val.data}" if cfg.val.data else "on")
        text = (f"run folder {self.run_dir}; init {cfg.train.init or 'fresh weights'}; validation {validation}")
        if cfg.output.tensorboard:
            text += f"; TensorBoard: tensorboard --logdir {self.run_dir}"
        return text

    def run(self) -> TrainResult:
        from ipt_ms import signals
        from ipt_ms.data.imageio import conversion_notes

        notes_before = conversion_notes()
        self.setup()
        cfg, state, main = self.cfg, self.state, self.dist.is_main
        result = TrainResult(self.run_dir, state.global_step, state.epoch, self.dist.rank, self.dist.world_size)
        total_steps = cfg.schedule.epochs * self.steps_per_epoch
        if cfg.train.max_steps is not None:
            total_steps = min(total_steps, cfg.train.max_steps)
        self._validated_at = None
        self._sinks = self._open_sinks(result)
        try:
            if main:
                log.info("training %s: %s tasks %s, %d step(s) per epoch, global batch %d on %d worker(s)%s, %s%s",
                         cfg.kind, self.device, ",".join(self.task_names), self.steps_per_epoch, self.global_batch,
                         self.dist.world_size, f" in {cfg.train.accumulate} micro-batches"
                         if cfg.train.accumulate > 1 else "", cfg.train.mode,
                         f", AMP {self.amp}" if self.amp != "O0" else "")
                log.info("%s", self._start_details())
                if self.last_checkpoint is not None:
                    log.info("resumed from %s at step %d (epoch %d, batch %d)", self.last_checkpoint,
                             state.global_step, state.epoch, state.step_in_epoch)
            for cb in self._sinks + self.callbacks:
                cb.on_train_begin(self)
            with signals.watcher() as stop:
                try:
                    with stop.deferred():
                        if state.global_step < total_steps:
                            self._loop(total_steps, stop, result)
                except KeyboardInterrupt:  # raised inside the process (a data source, a notebook)
                    if main and self.last_checkpoint_step() != state.global_step:
                        path = self.save()
                        log.warning("interrupted: checkpoint %s written; continue with --resume", path)
                    raise
                if result.interrupted is None and self.validator is not None and self._validated_at != \
                        state.global_step and state.global_step > 0:
                    self.validate(result, stop)  # the final weights are always validated
            if main:
                if self.last_checkpoint_step() != state.global_step:
                    self.save()
                result.weights = self.export()
                if cfg.output.plot and result.metrics is not None and result.metrics.exists():
                    try:
                        result.plot = plot_loss_curves(result.metrics, self.run_dir / PLOT_FILE)
                    except Exception as exc:  # the weights are written: a broken plot must not fail the run
                        log.warning("loss plot not written (%s: %s)", type(exc).__name__, exc)
                if self.validator is not None:
                    result.best = {task: {**best, "path": self.run_dir / f"best_{task}.ckpt" if cfg.val.best
                                          else None} for task, best in self.validator.best.items()}
            if result.interrupted is not None:
                barrier(self.dist)  # the other ranks exit only once rank 0 has written its files
            result.global_step, result.epoch = state.global_step, state.epoch
            result.checkpoint = self.last_checkpoint
            result.skipped_batches = state.skipped_batches
            result.image_notes = {kind: n - notes_before.get(kind, 0) for kind, n in conversion_notes().items()
                                  if n > notes_before.get(kind, 0)}
            for cb in self._sinks + self.callbacks:
                cb.on_train_end(self, result)
        finally:
            for cb in self._sinks + self.callbacks:
                cb.close()
            self.release()
        return result

    def release(self) -> None:
        """Unlock the run folder (`ipt_ms.fileio.FolderLock`; the end of the process does it too)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def _optimizer_step(self, lr_np: np.ndarray, hr_np: np.ndarray, task: int) -> np.ndarray:
        """One optimizer step on the rank's batch, in `train.accumulate` micro-batches."""
        import mindspore as ms

        k = self.cfg.train.accumulate
        if k == 1:
            return self.step_cell(ms.Tensor(lr_np), ms.Tensor(hr_np), task).asnumpy()
        b = len(lr_np) // k
        for i in range(k - 1):
            self.step_cell(ms.Tensor(lr_np[i * b:(i + 1) * b]), ms.Tensor(hr_np[i * b:(i + 1) * b]), task, False)
        return self.step_cell(ms.Tensor(lr_np[-b:]), ms.Tensor(hr_np[-b:]), task, True).asnumpy()

    def _loop(self, total_steps: int, stop, result: TrainResult) -> None:
        from ipt_ms.train.data import batches
        from ipt_ms.train.schedules import learning_rate
        from ipt_ms.train.step import set_learning_rate

        cfg, state, main = self.cfg, self.state, self.dist.is_main
        deadline = None
        if cfg.train.time_limit_min is not None:
            deadline = time.monotonic() + 60.0 * cfg.train.time_limit_min
        bar = StepBar(total_steps, cfg.kind, state.global_step, enable=self._bar_wanted())
        current_lr = None
        stream = batches(self.source, state.epoch, state.step_in_epoch, cfg.schedule.epochs - state.epoch,
                         cfg.data.num_workers)
        with bar.logging_redirected():
            for epoch, j, lr_np, hr_np, task in stream:
                lr_value = learning_rate(cfg.schedule, cfg.optim.lr, state.global_step, self.steps_per_epoch)
                if lr_value != current_lr:
                    set_learning_rate(self.optimizer, lr_value)
                    state.lr = current_lr = lr_value
                start = time.perf_counter()
                out = self._optimizer_step(lr_np, hr_np, task)
                stop.rearm()  # MindSpore re-installs its SIGINT handler during its calls
                seconds = time.perf_counter() - start
                total, l1, con, applied, grad_norm, scale = (float(v) for v in out)
                state.global_step += 1
                state.epoch, state.step_in_epoch = divmod(epoch * self.steps_per_epoch + j + 1, self.steps_per_epoch)
                result.losses.append((state.global_step, total))
                if applied < 0.5:
                    self._non_finite(total, scale, epoch, j, task, result)
                elif self.ema is not None:
                    self.ema()
                rate = self.global_batch / max(seconds, 1e-9)
                record = {"step": state.global_step, "epoch": epoch, "batch": j, "task": self.task_names[task],
                          "loss": total, "l1": l1, "contrastive": con, "lr": state.lr, "grad_norm": grad_norm,
                          "applied": bool(applied >= 0.5), "pairs_per_s": rate, "step_s": seconds,
                          "time": time.time()}
                if self.amp != "O0":
                    record["loss_scale"] = scale
                for cb in self._sinks + self.callbacks:  # sinks too: metrics.jsonl keeps every step's loss
                    cb.on_step_end(self, record)
                if main and (state.global_step % cfg.output.log_every == 0 or state.global_step == total_steps):
                    for sink in self._sinks:
                        sink.on_log(self, record)
                if main and cfg.val.enabled and state.global_step % cfg.val.every == 0:
                    self.validate(result, stop)
                    stop.rearm()
                    if result.validation is not None:
                        bar.validated(result.validation.short())
                bar.step(total, rate, state.lr)
                if main and state.global_step % cfg.output.checkpoint_every == 0:
                    self.save()
                if any_rank(stop.requested is not None, self.dist):
                    from signal import SIGTERM

                    result.interrupted = stop.requested or SIGTERM  # another rank received it
                    if not main:  # rank 0 prints the "interrupted at step" line
                        log.info("rank %d stops after step %d", self.dist.rank, state.global_step)
                    break
                if state.global_step >= total_steps:
                    break
                # data parallel: the ranks agree on the stop step (any rank past its deadline stops
                # all), or one would leave while the others wait for it in the next all-reduce
                if deadline is not None and any_rank(time.monotonic() > deadline, self.dist):
                    if main:
                        log.info("time limit of %g min reached at step %d", cfg.train.time_limit_min,
                                 state.global_step)
                    break
        bar.close()

    def _non_finite(self, total: float, scale: float, epoch: int, j: int, task: int, result: TrainResult) -> None:
        """A step whose loss or gradients were not finite (its update was not applied)."""
        where = f"step {self.state.global_step} (epoch {epoch}, batch {j}, task {self.task_names[task]})"
        if self.amp != "O0" and scale > 1.0:
            result.overflow_steps += 1  # dynamic loss scaling: scale reduced, batch skipped
            return
        if self.cfg.train.on_nonfinite == "skip":
            self.state.skipped_batches += 1
            if self.dist.is_main:
                log.warning("skipped %s: non-finite loss %s or gradients", where, total)
            return
        kept = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"
        raise NonFiniteLossError(f"non-finite loss ({total}) or gradients at {where}; the weights were not updated "
                              f"and nothing was saved ({kept}). Lower optim.lr, set optim.grad_clip_norm, or "
                              "skip such batches with --set train.on_nonfinite=skip")


def train(cfg: TrainConfig, resume: str | bool | None = None,
          source_factory: Callable[[int, int], object] | None = None, quiet: bool = False,
          callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Run (or resume) the training that `cfg` describes; see `Trainer`."""
    return Trainer(cfg, resume=resume, source_factory=source_factory, quiet=quiet, callbacks=callbacks).run()


# re-exported: the names callers have imported from here
__all__ = ["CHECKPOINT_DIR", "METRICS_FILE", "PLOT_FILE", "NonFiniteLossError", "Trainer", "TrainResult", "amp_level",
           "train"]
