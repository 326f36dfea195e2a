"""Shared fixtures: tiny seeded models on CPU, written weight files, mode switching."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import ipt_ms  # noqa: F401  (sets the oneDNN/GLOG environment before MindSpore loads)

# Graph compilations go through the persistent compile cache (ipt_ms.compile_cache): in a
# folder of this test session, never the user's own (subprocesses inherit it).
_COMPILE_CACHE = tempfile.mkdtemp(prefix="ipt-ms-test-compile-cache-")
os.environ["IPT_MS_COMPILE_CACHE"] = _COMPILE_CACHE
atexit.register(shutil.rmtree, _COMPILE_CACHE, True)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _mindspore_cpu():
    from ipt_ms.runtime import configure

    configure("cpu", "graph")
    yield


@pytest.fixture(autouse=True)
def _signals_back_to_normal():
    """`ipt_ms.cli.main()` called in-process blocks SIGINT/SIGTERM for the whole process
    (ipt_ms.signals); undo it so later subprocesses (bash, msrun) do not inherit the block."""
    yield
    from ipt_ms import signals

    signals.uninstall()
    _stop_signals_deliverable()


def _stop_signals_deliverable() -> None:
    """Children must start with SIGINT/SIGTERM deliverable: a bash launcher cannot trap a
    signal that was ignored or blocked when it started. A test runner started with `&` from
    a script (as CI may be) inherits an ignored SIGINT, and a test may leave one blocked."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, None):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_stop_signals_deliverable()


@pytest.fixture(params=["pynative", "graph"])
def ms_mode(request):
    """Run a test in both MindSpore execution modes."""
    from ipt_ms.runtime import configure

    configure("cpu", request.param)
    yield request.param
    configure("cpu", "graph")


@pytest.fixture
def pynative():
    from ipt_ms.runtime import configure

    configure("cpu", "pynative")
    yield
    configure("cpu", "graph")


@pytest.fixture
def levers_cache(tmp_path, monkeypatch):
    """This user's compile cache (where stored levers live) in a temporary folder, with no
    levers setting from the environment or an earlier `set_policy`."""
    from ipt_ms import levers

    monkeypatch.setenv("IPT_MS_COMPILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IPT_MS_LEVERS", raising=False)
    monkeypatch.delenv("IPT_MS_CONV_AS_MATMUL", raising=False)
    monkeypatch.setattr(levers, "_policy_override", None)
    return tmp_path / "cache"


def read_manifest(name: str) -> dict[str, tuple[int, ...]]:
    """Official key -> shape from a tsv manifest in tests/fixtures."""
    rows = (FIXTURES / name).read_text().splitlines()[1:]
    return {k: tuple(int(d) for d in s.split("x")) for k, s, _ in (r.split("\t") for r in rows)}


@pytest.fixture(scope="session")
def tiny_spec():
    from ipt_ms.spec import IPTSpec

    # four tasks of the tiny at 8 features: ~1 MB files, which the full-disk tests' tmpfs sizes assume
    return IPTSpec.tiny(scales=(2, 3, 4, 1), task_names=("sr_x2", "sr_x3", "sr_x4", "denoise_30"), n_feats=8)


@pytest.fixture(scope="session")
def tiny_state(tiny_spec):
    from parity.seeded import seeded_state

    return seeded_state(tiny_spec, seed=3)


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory, tiny_spec, tiny_state) -> Path:
    from ipt_ms.convert.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_weights(path, tiny_state, tiny_spec)
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_pt) -> Path:
    from ipt_ms.convert.weights import convert_file

    path = tmp_path_factory.mktemp("weights") / "tiny.ckpt"
    convert_file(tiny_pt, path)
    return path


@pytest.fixture
def photo_png(tmp_path) -> Path:
    """A real photo crop (scikit-image's astronaut), 70x85, as PNG."""
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()[100:170, 150:235]).save(path)
    return path


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("position_ids"):
            out[key] = np.arange(shape[-1], dtype=np.int64).reshape(shape)
        else:
            out[key] = rng.standard_normal(shape).astype(np.float32)
    return out
