"""The IPT training loop: pre-training (several tasks, one per batch) and fine-tuning.

    from ipt_ms.train import load_train_config, train
    result = train(load_train_config("configs/tiny.yaml"))

Per step: the learning rate of the current epoch is set, `TrainStep` runs forward,
backward, the data-parallel gradient mean, clipping and Adam in one compiled graph
(one graph per task: the task index is a compile-time constant), then rank 0 logs the
step (metrics.jsonl, progress bar) and writes a checkpoint every
`output.checkpoint_every` steps. A resumed run restores weights, Adam state, loss scale,
RNG states and the data position, so its losses equal those of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.config import ConfigError, to_dict
from ipt_ms.errors import IPTError
from ipt_ms.train.checkpoint import (
    TrainState,
    capture_rng,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from ipt_ms.train.config import TrainConfig, resume_mismatch
from ipt_ms.train.distributed import DistInfo, init_distributed
from ipt_ms.train.metrics import MetricsLog, plot_loss_curves

log = logging.getLogger("ipt_ms.train")

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss_curves.png"
CHECKPOINT_DIR = "checkpoints"


class NonFiniteLossError(IPTError):
    """The run stopped on a non-finite loss; the last good checkpoint is kept. Exit code 3."""

    exit_code = 3


@dataclass
class TrainResult:
    """What a call to `train` did."""

    run_dir: Path
    global_step: int
    epoch: int
    rank: int = 0
    world_size: int = 1
    checkpoint: Path | None = None
    weights: Path | None = None
    metrics: Path | None = None
    plot: Path | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, total loss) of this call
    skipped_batches: int = 0
    overflow_steps: int = 0


def amp_level(cfg: TrainConfig, device: str) -> str:
    """'auto' means O2 (float16 cells, float32 loss) on GPU/Ascend and float32 on CPU."""
    if cfg.train.amp == "auto":
        return "O0" if device == "CPU" else "O2"
    return cfg.train.amp


def _resolve_resume(resume: str | bool | None, checkpoint_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume is True or resume == "latest":
        found = latest_checkpoint(checkpoint_dir)
        if found is None:
            raise IPTError(f"nothing to resume: no checkpoint in {str(checkpoint_dir)!r}")
        return found
    path = Path(resume)
    if path.is_dir():
        found = latest_checkpoint(path / CHECKPOINT_DIR) or latest_checkpoint(path)
        if found is None:
            raise IPTError(f"nothing to resume: no checkpoint in {str(path)!r}")
        return found
    return path


def _assign(params, tensors: dict[str, np.ndarray], what: str, source: Path) -> None:
    import mindspore as ms

    params = list(params)  # get_parameters() is a generator
    missing = [p.name for p in params if p.name not in tensors]
    if missing:
        raise IPTError(f"{source}: checkpoint lacks {len(missing)} {what} tensor(s), e.g. {missing[0]!r}")
    for p in params:
        value = tensors[p.name]
        if value.size == int(np.prod(p.shape)):
            value = value.reshape(tuple(p.shape))  # MindSpore stores 0-d tensors as shape (1,)
        if tuple(value.shape) != tuple(p.shape):
            raise IPTError(f"{source}: {p.name} has shape {tuple(value.shape)} in the checkpoint, "
                           f"{tuple(p.shape)} in the network")
        p.set_data(ms.Tensor(np.array(value, order="C"), dtype=p.dtype))  # ascontiguousarray makes 0-d 1-d


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
    """

    def __init__(self, cfg: TrainConfig, resume: str | bool | None = None,
                 source_factory: Callable[[int, int], object] | None = None, quiet: bool = False):
        self.cfg = cfg
        self.resume = resume
        self.source_factory = source_factory
        self.quiet = quiet
        self._ready = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything (network, optimiser, data; restore a checkpoint). `run` calls
        it; call it first to inspect the starting state."""
        if self._ready:
            return
        self._setup()
        self._ready = True

    def _setup(self) -> None:
        import mindspore as ms

        from ipt_ms.inference import build_model
        from ipt_ms.runtime import configure
        from ipt_ms.train.data import build_source
        from ipt_ms.train.losses import IPTLoss
        from ipt_ms.train.step import LossScaleSettings, TrainStep, build_adam
        from ipt_ms.train.weights import initial_weights

        cfg = self.cfg
        self.device = configure(cfg.train.device, cfg.train.mode)
        self.dist: DistInfo = init_distributed()
        self.run_dir = Path(cfg.output.dir)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        resume_path = _resolve_resume(self.resume, self.checkpoint_dir)
        saved: tuple | None = None
        if resume_path is not None:
            saved = load_checkpoint(resume_path)
            differences = resume_mismatch(saved[1].config, cfg)
            if differences:
                raise ConfigError(f"cannot resume from {resume_path}: the config differs from the one it was "
                                  f"trained with: {'; '.join(differences)}")
            if saved[1].world_size != self.dist.world_size:
                log.warning("checkpoint was written by %d worker(s), resuming with %d: the data order changes, "
                            "so the run will not repeat an uninterrupted one exactly",
                            saved[1].world_size, self.dist.world_size)
        elif latest_checkpoint(self.checkpoint_dir) is not None:
            raise IPTError(f"{str(self.run_dir)!r} already holds checkpoints of a run; pass --resume to continue "
                           "it, or choose another output.dir")

        # the data first: a wrong folder should fail before a 115M-parameter model is built
        self.spec = cfg.model.spec()
        if self.source_factory is not None:
            self.source = self.source_factory(self.dist.world_size, self.dist.rank)
        else:
            self.source = build_source(cfg, self.spec, self.dist.world_size, self.dist.rank)
        self.steps_per_epoch = len(self.source)
        self.global_batch = self.source.batch_size * self.dist.world_size

        seed = cfg.train.seed
        ms.set_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        init_state = None
        if saved is None:
            self.spec, init_state = initial_weights(cfg)
        self.net = build_model(self.spec, init_state)  # set to training mode below
        self.amp = amp_level(cfg, self.device)
        model = self.net
        if self.amp != "O0":
            if self.device == "CPU":
                log.warning("mixed precision %s on CPU: float16 is slower than float32 here; use it to test only",
                            self.amp)
            model = ms.amp.auto_mixed_precision(self.net, self.amp)
        model.set_train(True)
        self.task_names = list(self.spec.task_names)
        loss_net = IPTLoss(model, cfg.loss.contrastive, cfg.loss.weight, cfg.loss.temperature,
                           cfg.loss.base_temperature)
        self.optimizer = build_adam(self.net.trainable_params(), cfg.optim.lr, cfg.optim.betas, cfg.optim.eps,
                                    cfg.optim.weight_decay)
        scale = None
        if self.amp != "O0":
            ls = cfg.train.loss_scale
            scale = LossScaleSettings(init=ls.init, factor=ls.factor, window=ls.window)
        self.step_cell = TrainStep(loss_net, self.optimizer, cfg.optim.grad_clip_norm, scale,
                                   distributed=self.dist.distributed)

        self.state = TrainState(steps_per_epoch=self.steps_per_epoch, world_size=self.dist.world_size,
                                config=to_dict(cfg))
        self.last_checkpoint: Path | None = None
        if saved is not None:
            tensors, state, _ = saved
            if state.steps_per_epoch != self.steps_per_epoch:
                raise IPTError(f"cannot resume from {resume_path}: an epoch had {state.steps_per_epoch} steps, "
                               f"now {self.steps_per_epoch} (did the training data change?)")
            for group, params in self._state_params().items():
                _assign(params, tensors, group, resume_path)
            restore_rng(state.rng)
            self.state.global_step, self.state.epoch = state.global_step, state.epoch
            self.state.step_in_epoch, self.state.skipped_batches = state.step_in_epoch, state.skipped_batches
            self.last_checkpoint = resume_path

    # ------------------------------------------------------------------ checkpoints
    def _state_params(self) -> dict[str, list]:
        """Every parameter a checkpoint holds, by group: what is saved is what is restored."""
        opt, update = self.optimizer, self.step_cell.update
        return {"network": list(self.net.get_parameters()),
                "optimizer": list(opt.exp_avg) + list(opt.exp_avg_sq) + [opt.state_step],
                "loss-scale": [update.loss_scale, update.good_steps]}

    def _checkpoint_tensors(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for params in self._state_params().values() for p in params}

    def save(self) -> Path | None:
        """Write a checkpoint at the current position (rank 0; others return None)."""
        if not self.dist.is_main:
            return None
        self.state.rng = capture_rng()
        self.last_checkpoint = save_checkpoint(self.checkpoint_dir, self._checkpoint_tensors(), self.state,
                                               self.spec.to_json(), self.cfg.output.keep_last)
        return self.last_checkpoint

    # ------------------------------------------------------------------ loop
    def run(self) -> TrainResult:
        self.setup()
        cfg, state, main = self.cfg, self.state, self.dist.is_main
        result = TrainResult(self.run_dir, state.global_step, state.epoch, self.dist.rank, self.dist.world_size)
        total_steps = cfg.schedule.epochs * self.steps_per_epoch
        if cfg.train.max_steps is not None:
            total_steps = min(total_steps, cfg.train.max_steps)
        metrics = None
        if main:
            from ipt_ms.fileio import atomic_output

            self.run_dir.mkdir(parents=True, exist_ok=True)
            import yaml

            with atomic_output(self.run_dir / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
            metrics = MetricsLog(self.run_dir / METRICS_FILE)
            metrics.truncate_after(state.global_step)
            result.metrics = metrics.path
            log.info("training %s: %s tasks %s, %d step(s) per epoch, global batch %d on %d worker(s), %s%s",
                     cfg.kind, self.device, ",".join(self.task_names), self.steps_per_epoch, self.global_batch,
                     self.dist.world_size, cfg.train.mode, f", AMP {self.amp}" if self.amp != "O0" else "")
            if self.last_checkpoint is not None:
                log.info("resumed from %s at step %d (epoch %d, batch %d)", self.last_checkpoint,
                         state.global_step, state.epoch, state.step_in_epoch)
        try:
            if state.global_step < total_steps:
                self._loop(total_steps, metrics, result)
        except KeyboardInterrupt:
            if main and self.last_checkpoint_step() != state.global_step:
                path = self.save()
                log.warning("interrupted: checkpoint %s written; continue with --resume", path)
            raise
        finally:
            if metrics is not None:
                metrics.close()
        if main:
            if self.last_checkpoint_step() != state.global_step:
                self.save()
            result.weights = self.run_dir / cfg.output.export
            from ipt_ms.train.weights import export_weights

            export_weights(self.net, self.spec, result.weights)
            if cfg.output.plot and result.metrics is not None and result.metrics.exists():
                result.plot = plot_loss_curves(result.metrics, self.run_dir / PLOT_FILE)
            log.info("done at step %d: weights %s", state.global_step, result.weights)
        result.global_step, result.epoch = state.global_step, state.epoch
        result.checkpoint = self.last_checkpoint
        result.skipped_batches = state.skipped_batches
        return result

    def last_checkpoint_step(self) -> int | None:
        return None if self.last_checkpoint is None else checkpoint_step(self.last_checkpoint)

    def _loop(self, total_steps: int, metrics: MetricsLog | None, result: TrainResult) -> None:
        import mindspore as ms

        from ipt_ms.progress import progress_bar
        from ipt_ms.train.data import batches
        from ipt_ms.train.step import set_learning_rate

        cfg, state, main = self.cfg, self.state, self.dist.is_main
        deadline = None
        if cfg.train.time_limit_min is not None:
            if self.dist.distributed:  # ranks could disagree on the last step and hang in the all-reduce
                raise ConfigError("train.time_limit_min: only for single-process runs; use train.max_steps")
            deadline = time.monotonic() + 60.0 * cfg.train.time_limit_min
        show = main and cfg.output.progress and not self.quiet
        bar = progress_bar(iter(()), total=total_steps, desc=cfg.kind, unit="step", enable=show,
                           initial=state.global_step)
        lr_epoch = None
        ema_loss, ema_rate = None, None
        stream = batches(self.source, state.epoch, state.step_in_epoch, cfg.schedule.epochs - state.epoch,
                         cfg.data.num_workers)
        for epoch, j, lr_np, hr_np, task in stream:
            if epoch != lr_epoch:
                state.lr = cfg.schedule.lr_at(cfg.optim.lr, epoch)
                set_learning_rate(self.optimizer, state.lr)
                lr_epoch = epoch
            start = time.perf_counter()
            out = self.step_cell(ms.Tensor(lr_np), ms.Tensor(hr_np), task).asnumpy()
            seconds = time.perf_counter() - start
            total, l1, con, applied, grad_norm, scale = (float(v) for v in out)
            state.global_step += 1
            state.epoch, state.step_in_epoch = divmod(epoch * self.steps_per_epoch + j + 1, self.steps_per_epoch)
            result.losses.append((state.global_step, total))
            if applied < 0.5:
                self._non_finite(total, scale, epoch, j, task, result)
            rate = self.global_batch / max(seconds, 1e-9)
            ema_rate = rate if ema_rate is None else 0.9 * ema_rate + 0.1 * rate
            if math.isfinite(total):
                ema_loss = total if ema_loss is None else 0.98 * ema_loss + 0.02 * total
            if main:
                if metrics is not None and (state.global_step % cfg.output.log_every == 0
                                            or state.global_step == total_steps):
                    record = {"step": state.global_step, "epoch": epoch, "batch": j,
                              "task": self.task_names[task], "loss": total, "l1": l1, "contrastive": con,
                              "lr": state.lr, "grad_norm": grad_norm, "applied": bool(applied >= 0.5),
                              "pairs_per_s": rate, "step_s": seconds, "time": time.time()}
                    if self.amp != "O0":
                        record["loss_scale"] = scale
                    metrics.write(record)
                if show:
                    bar.update(1)
                    bar.set_postfix_str(f"loss {ema_loss if ema_loss is not None else float('nan'):.4f} "
                                        f"lr {state.lr:.2e} {ema_rate:.1f} pairs/s", refresh=False)
                if state.global_step % cfg.output.checkpoint_every == 0:
                    self.save()
            if state.global_step >= total_steps:
                break
            if deadline is not None and time.monotonic() > deadline:
                log.info("time limit of %g min reached at step %d", cfg.train.time_limit_min, state.global_step)
                break
        if show:
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
          source_factory: Callable[[int, int], object] | None = None, quiet: bool = False) -> TrainResult:
    """Run (or resume) the training that `cfg` describes; see `Trainer`."""
    return Trainer(cfg, resume=resume, source_factory=source_factory, quiet=quiet).run()
