"""Tracebacks of issue 18 item 8, each now one line (exit 2) or a finished run: real subprocesses.

A path over the kernel's 4096-character limit, a full TMPDIR under the compile cache's
scratch folder, PYTHONIOENCODING=ascii with non-ASCII names, and MindSpore log variables
its import rejects (GLOG_v=banana).
"""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.data.imageio import write_image
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

LONG = "a" * 250 + ("/" + "b" * 250) * 17  # 4,517 characters, every part under NAME_MAX


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("env")
    assert run_cli("make-weights", "--preset", "tiny", "--tasks", "sr_x2", "--seed", "0", "-o", "w.pt",
                   cwd=root).returncode == 0
    (root / "photos").mkdir()
    write_image(root / "photos" / "fötö.png", (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8))
    return root


@pytest.mark.parametrize("args", [("convert", "w.pt", f"{LONG}/x.ckpt"), ("convert", f"{LONG}/x.pt", "y.ckpt"),
                                  ("restore", "photos", "--weights", "w.pt", "-o", LONG),
                                  ("synth", "photos", LONG, "--tasks", "sr_x2")])
def test_a_path_over_4096_characters_is_one_short_line(files, args):
    before = Snapshot.take(files, dirs=True)
    line = assert_one_line_error(run_cli(*args, cwd=files), "File name too long", "(4,5")
    assert len(line) < 300  # the path is shortened, not printed whole
    Snapshot.take(files, dirs=True).assert_same(before)


def test_non_ascii_names_with_an_ascii_terminal_finish_and_print_escapes(files):
    proc = run_cli("restore", "photos", "--weights", "w.pt", "--task", "sr_x2", "-o", "outé", "--protocol", "zoo",
                   "--device", "CPU", "--compile-cache", "off", "-q", cwd=files, env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert (files / "outé" / "fötö_sr_x2.png").is_file()
    assert "f\\xf6t\\xf6_sr_x2.png" in proc.stdout and "out\\xe9" in proc.stdout


@pytest.mark.parametrize("name, value", [("GLOG_v", "banana"), ("GLOG_stderrthreshold", "9"),
                                         ("GLOG_logtostderr", "0")])
def test_mindspore_log_variables_it_rejects_are_one_line(files, name, value):
    before = Snapshot.take(files, dirs=True)
    proc = run_cli("convert", "w.pt", "w.ckpt", cwd=files, env={name: value})  # MindSpore writes the .ckpt
    assert_one_line_error(proc, name, repr(value))
    Snapshot.take(files, dirs=True).assert_same(before)


def test_a_full_tmpdir_runs_without_the_compile_cache(files, tmpfs):
    cache = files / "cache"
    first = run_cli("restore", "photos", "--weights", "w.pt", "--task", "sr_x2", "-o", "cached", "--protocol", "zoo",
                    "--device", "CPU", "--compile-cache", cache, "-q", cwd=files)
    assert first.returncode == 0, first.stderr  # the store now holds the graph: the next run copies it to scratch
    full = tmpfs(256)
    (full / "fill").write_bytes(b"\0" * (240 << 10))
    proc = run_cli("restore", "photos", "--weights", "w.pt", "--task", "sr_x2", "-o", "scratchless", "--protocol",
                   "zoo", "--device", "CPU", "--compile-cache", cache, cwd=files, env={"TMPDIR": str(full)})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "[ERROR]" not in proc.stderr, proc.stderr
    assert "compile cache not used in this run: cannot write its scratch folder" in proc.stderr
    assert (files / "scratchless" / "fötö_sr_x2.png").read_bytes() == (files / "cached" / "fötö_sr_x2.png").read_bytes()
