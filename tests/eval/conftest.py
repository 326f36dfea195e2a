"""Fixtures for the evaluation tests: a tiny seeded model and miniature benchmark folders
made from real photos (scikit-image) by the data layer's synthesizer."""

from __future__ import annotations

from pathlib import Path

import pytest

import ipt_ms  # noqa: F401  (oneDNN/GLOG environment before MindSpore loads)

TASKS = ("sr_x2", "denoise_30", "derain")


@pytest.fixture(scope="session")
def eval_spec():
    from ipt_ms.spec import IPTSpec

    return IPTSpec.tiny(scales=(2, 1, 1), task_names=TASKS)


@pytest.fixture(scope="session")
def eval_weights(tmp_path_factory, eval_spec) -> Path:
    from ipt_ms.convert.weights import save_weights
    from parity.seeded import seeded_state

    path = tmp_path_factory.mktemp("eval-weights") / "tiny.pt"
    save_weights(path, seeded_state(eval_spec, 7), eval_spec)
    return path


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    from ipt_ms.eval.photos import SAMPLE_PHOTOS, write_sample_photos

    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder, SAMPLE_PHOTOS[:3], height=50, width=62)
    return folder


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory, photo_dir) -> Path:
    """<root>/benchmark/Mini in the EDSR layout (HR, LR_bicubic/X2, denoise, derain)."""
    from ipt_ms.data.synth import synthesize

    root = tmp_path_factory.mktemp("bench")
    synthesize(photo_dir, root / "benchmark" / "Mini", tasks=list(TASKS), seed=0, progress=False)
    return root
