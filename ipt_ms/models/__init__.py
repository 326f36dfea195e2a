"""MindSpore IPT network. Pure architecture: no I/O, no configuration parsing."""

from ipt_ms.models.ipt import IPT
from ipt_ms.spec import IPTSpec


def build_ipt(spec: IPTSpec) -> IPT:
    """Build the MindSpore network for `spec` (weights freshly initialised)."""
    return IPT(spec)


__all__ = ["IPT", "IPTSpec", "build_ipt"]
