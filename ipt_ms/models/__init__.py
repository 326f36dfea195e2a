"""MindSpore IPT network. Pure architecture: no I/O, no configuration parsing."""

import contextlib
from collections.abc import Iterator

from ipt_ms.models.ipt import IPT, Conv2d, set_conv_as_matmul
from ipt_ms.spec import IPTSpec


def build_ipt(spec: IPTSpec, conv_as_matmul: bool | None = None) -> IPT:
    """Build the MindSpore network for `spec` (weights freshly initialised).

    `conv_as_matmul` (default: when MindSpore's device is the CPU) runs the convolutions
    as im2col + matmul (`ipt_ms.models.ipt.Conv2d`)."""
    if conv_as_matmul is None:
        import mindspore as ms

        conv_as_matmul = ms.get_context("device_target") == "CPU"
    net = IPT(spec)
    set_conv_as_matmul(net, conv_as_matmul)
    return net


@contextlib.contextmanager
def native_convolutions(net: IPT) -> Iterator[IPT]:
    """Within the block, `net` runs its convolutions natively (what exported graphs contain)."""
    saved = [(cell, cell.as_matmul) for _, cell in net.cells_and_names() if isinstance(cell, Conv2d)]
    set_conv_as_matmul(net, False)
    try:
        yield net
    finally:
        for cell, flag in saved:
            cell.as_matmul = flag


__all__ = ["IPT", "IPTSpec", "build_ipt", "native_convolutions", "set_conv_as_matmul"]
