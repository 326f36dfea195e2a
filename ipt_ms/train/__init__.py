"""IPT training: losses, the jit-compiled step, checkpoints, data parallelism and the loop.

MindSpore is imported lazily by the submodules that need it (`losses`, `step`, `loop`
internals), so importing this package for its config helpers stays cheap.
"""

from ipt_ms.train.config import TrainConfig, load_train_config


def train(*args, **kwargs):
    """See `ipt_ms.train.loop.train`."""
    from ipt_ms.train.loop import train as _train

    return _train(*args, **kwargs)


__all__ = ["TrainConfig", "load_train_config", "train"]
