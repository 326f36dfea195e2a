"""Exported files shared by the export tests: the conftest's tiny 4-task model (sr_x2, sr_x3,
sr_x4, denoise_30), exported once per session from each source."""

from __future__ import annotations

from pathlib import Path

import pytest

import ipt_ms  # noqa: F401  (oneDNN/GLOG environment before MindSpore loads)

TASK = "sr_x3"


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def ms_onnx(export_dir, tiny_pt) -> Path:
    """sr_x3 from MindSpore, every parity stage exposed."""
    from ipt_ms.export import export_weights

    (result,) = export_weights(tiny_pt, export_dir / "ms.onnx", task=TASK, source="mindspore", with_stages=True,
                               device="cpu")
    return result.path


@pytest.fixture(scope="session")
def torch_onnx(export_dir, tiny_pt) -> Path:
    """sr_x3 from the PyTorch twin, every parity stage exposed."""
    from ipt_ms.export import export_weights

    (result,) = export_weights(tiny_pt, export_dir / "pt.onnx", task=TASK, source="torch", with_stages=True)
    return result.path


@pytest.fixture
def tiles():
    """Five 24x24 input tiles (the tiny model's patch), so batch 5 exercises the dynamic batch."""
    import numpy as np

    return np.random.default_rng(11).uniform(0, 255, (5, 3, 24, 24)).astype(np.float32)
