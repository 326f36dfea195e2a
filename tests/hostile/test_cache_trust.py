"""A compile cache never changes an answer (issue 18, item 6): real `ipt-ms restore` runs.

A graph copied under another key is a miss; a stored graph MindSpore cannot load is
dropped and compiled afresh; a store folder others can write, or that another user owns,
is not used, with one line saying why.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.hostile import crafted
from tests.hostile.conftest import run_cli


@pytest.fixture(scope="module")
def two_task_weights(tmp_path_factory) -> Path:
    """Tiny weights whose two tasks (denoise_30, derain) take and give the same shapes."""
    folder = tmp_path_factory.mktemp("w")
    proc = run_cli("make-weights", "--preset", "tiny", "--tasks", "denoise_30,derain", "-o", folder / "w.ckpt", "-q",
                   cwd=folder, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return folder / "w.ckpt"


def _restore(tmp_path, weights, task, image, out, cache, *extra):
    return run_cli("restore", "--weights", weights, "--task", task, image, "-o", out, "--compile-cache", cache, *extra,
                   cwd=tmp_path, timeout=300)


def _graphs(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.mindir"), key=lambda p: p.stat().st_size)


def _private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def test_a_graph_copied_under_another_key_is_not_used(tmp_path, two_task_weights):
    crafted.write_png(tmp_path / "a.png", crafted.photo(40, 48))
    denoise, derain = _private(tmp_path / "c_denoise"), _private(tmp_path / "c_derain")
    for task, cache in (("denoise_30", denoise), ("derain", derain)):
        proc = _restore(tmp_path, two_task_weights, task, "a.png", f"o_{task}", cache, "-q")
        assert proc.returncode == 0, proc.stderr
    assert len(_graphs(denoise)) == len(_graphs(derain)) >= 1
    for src, dst in zip(_graphs(denoise), _graphs(derain)):  # denoise_30's graphs, with checksums, as derain's
        shutil.copyfile(src, dst)
        shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    proc = _restore(tmp_path, two_task_weights, "derain", "a.png", "o_again", derain, "-q")
    assert proc.returncode == 0, proc.stderr
    again = (tmp_path / "o_again" / "a_derain.png").read_bytes()
    assert again != (tmp_path / "o_denoise_30" / "a_denoise_30.png").read_bytes(), "denoise_30's answer for derain"
    assert again == (tmp_path / "o_derain" / "a_derain.png").read_bytes()


def test_a_stored_graph_that_cannot_be_loaded_is_dropped(tmp_path, two_task_weights):
    crafted.write_png(tmp_path / "a.png", crafted.photo(40, 48))
    crafted.write_png(tmp_path / "big.png", crafted.photo(100, 120))
    small, big = _private(tmp_path / "c_small"), _private(tmp_path / "c_big")
    assert _restore(tmp_path, two_task_weights, "denoise_30", "a.png", "o1", small, "-q").returncode == 0
    assert _restore(tmp_path, two_task_weights, "denoise_30", "big.png", "o2", big, "-q", "--batch-size",
                    "4").returncode == 0
    # another batch shape's graphs under this one's keys, with consistent records (key, size, checksum)
    forged = {}
    for src, dst in zip(_graphs(big), _graphs(small)):
        if src.name == dst.name:
            continue
        shutil.copyfile(src, dst)
        info = json.loads(src.with_suffix(".json").read_text())
        info["key"] = dst.stem
        dst.with_suffix(".json").write_text(json.dumps(info))
        forged[dst] = dst.read_bytes()
    assert forged
    for attempt in ("o3", "o4"):  # every later run works, not only the first
        proc = _restore(tmp_path, two_task_weights, "denoise_30", "a.png", attempt, small)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "C++ Call Stack" not in proc.stderr, proc.stderr
        assert (tmp_path / attempt / "a_denoise_30.png").read_bytes() == \
            (tmp_path / "o1" / "a_denoise_30.png").read_bytes()
        if attempt == "o3":
            said = [line for line in proc.stderr.splitlines() if "compile cache" in line]
            assert len(said) == 1 and "could not be loaded" in said[0], proc.stderr
    # the graph that failed is gone from the store (replaced by a good one when it was compiled)
    assert any(not path.exists() or path.read_bytes() != data for path, data in forged.items())


@pytest.mark.parametrize("case", ["world_writable", "foreign_owner"])
def test_a_cache_folder_others_control_is_not_used(tmp_path, two_task_weights, case):
    import pwd

    crafted.write_png(tmp_path / "a.png", crafted.photo(40, 48))
    cache = tmp_path / "cache"
    cache.mkdir()
    if case == "world_writable":
        cache.chmod(0o777)
        words = "others can write to it (mode 777)"
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        nobody = pwd.getpwnam("nobody")
        os.chown(cache, nobody.pw_uid, nobody.pw_gid)
        cache.chmod(0o755)
        words = "owned by another user"
    proc = _restore(tmp_path, two_task_weights, "derain", "a.png", "out", cache)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "compile cache" in line]
    assert len(lines) == 1 and words in lines[0] and str(cache) in lines[0], proc.stderr
    assert not list(cache.iterdir())  # nothing stored, nothing read
    assert (tmp_path / "out" / "a_derain.png").is_file()


def test_a_sticky_shared_cache_of_ours_is_used(tmp_path, two_task_weights):
    crafted.write_png(tmp_path / "a.png", crafted.photo(40, 48))
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o1777)
    proc = _restore(tmp_path, two_task_weights, "derain", "a.png", "out", cache)
    assert proc.returncode == 0, proc.stderr
    assert "compile cache" not in proc.stderr
    assert _graphs(cache)
