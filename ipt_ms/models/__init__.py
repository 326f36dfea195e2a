"""MindSpore IPT network. Pure architecture: no I/O, no configuration parsing."""

import contextlib
from collections.abc import Iterator

from ipt_ms.models.cpu_grads import set_cpu_gradients
from ipt_ms.models.ipt import IPT, Conv2d, set_conv_as_matmul
from ipt_ms.spec import IPTSpec


def build_ipt(spec: IPTSpec, conv_as_matmul: bool | None = None) -> IPT:
    """Build the MindSpore network for `spec` (weights freshly initialised).

    `conv_as_matmul` (default: `ipt_ms.runtime.conv_as_matmul_default`, on for the CPU) runs
    the convolutions as im2col + matmul (`ipt_ms.models.ipt.Conv2d`), natively while training
    where `ipt_ms.runtime.conv_native_in_training` says so; on CPU the softmax gradient is
    the written-out one (`ipt_ms.models.cpu_grads`)."""
    from ipt_ms.runtime import conv_as_matmul_default, conv_native_in_training, cpu_gradients_default

    if conv_as_matmul is None:
        conv_as_matmul = conv_as_matmul_default()
    net = IPT(spec)
    set_conv_as_matmul(net, conv_as_matmul, native_in_training=conv_native_in_training())
    set_cpu_gradients(net, cpu_gradients_default())
    return net


#: Cell flags for CPU speed or memory that exported graphs must not carry: im2col
#: convolutions, the batch-1 attention and the batch-sized query embedding (both bake the
#: traced batch into the graph) and mint.permute (the ONNX exporter has no TransposeView).
EXPORT_OFF_FLAGS = ("as_matmul", "single_image_path", "expand_query_pos", "free_transposes")


@contextlib.contextmanager
def exported_form(net: IPT) -> Iterator[IPT]:
    """Within the block, `net` computes as exported graphs must (`EXPORT_OFF_FLAGS` off):
    native convolutions, plain transposes, the batched attention for every batch."""
    saved = [(cell, flag, getattr(cell, flag)) for _, cell in net.cells_and_names()
             for flag in EXPORT_OFF_FLAGS if hasattr(cell, flag)]
    for cell, flag, _ in saved:
        setattr(cell, flag, False)
    try:
        yield net
    finally:
        for cell, flag, value in saved:
            setattr(cell, flag, value)


__all__ = ["EXPORT_OFF_FLAGS", "IPT", "Conv2d", "IPTSpec", "build_ipt", "exported_form", "set_conv_as_matmul",
           "set_cpu_gradients"]
