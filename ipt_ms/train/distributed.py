"""Data-parallel setup with MindSpore's own collectives (launched by `msrun`).

`msrun` (scripts/train_distributed.sh) starts one process per worker and a scheduler;
each worker calls `init()`, which picks the backend from the device target: HCCL on
Ascend, NCCL on GPU, MindSpore's own MCCL on CPU. DATA_PARALLEL with gradients_mean
makes `nn.DistributedGradReducer` average gradients, so every rank applies the same
update and the weights stay identical without any broadcast (all ranks also start from
the same seed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ipt_ms.errors import IPTError, first_line


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the data-parallel group."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes checkpoints and exports; the others only compute."""
        return self.rank == 0


def launched_distributed() -> bool:
    """True inside a worker started by msrun (or a rank-table launch on Ascend)."""
    if os.environ.get("MS_ROLE") == "MS_WORKER":
        return True
    try:
        return int(os.environ.get("RANK_SIZE", "1")) > 1
    except ValueError:
        return False


def init_distributed() -> DistInfo:
    """Join the worker group and switch MindSpore to DATA_PARALLEL (gradient mean).

    Call after the device target is set (`ipt_ms.runtime.configure`). Returns a
    single-process `DistInfo` when not launched by msrun.
    """
    if not launched_distributed():
        return DistInfo()
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    try:
        init()
    except (RuntimeError, ValueError) as err:
        raise IPTError(f"distributed init failed (is this run launched by msrun with matching "
                       f"--worker_num?): {first_line(err)}") from err
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return DistInfo(rank=get_rank(), world_size=get_group_size(), distributed=True)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if `flag` is true on any rank (one small all-reduce; a plain
    bool when not distributed). Ranks calling it at the same step agree on the answer, so
    a signal that reaches one worker stops all of them after the same step."""
    if not info.distributed:
        return bool(flag)
    import mindspore as ms
    import numpy as np
    from mindspore import ops

    total = ops.AllReduce()(ms.Tensor(np.array([1.0 if flag else 0.0], np.float32)))
    return float(total.asnumpy()[0]) > 0.5


def barrier(info: DistInfo) -> None:
    """Wait until every rank got here (e.g. rank 0 finished writing a checkpoint)."""
    any_rank(False, info)
