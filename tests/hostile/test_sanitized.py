"""Names a user controls never reach the terminal raw, and nothing is left behind (issue 18, item 11).

Keys, task names and paths holding ESC or a newline are echoed escaped in the one-line
error; a task name with a newline never becomes part of a file name; hidden temporary
files of a killed writer are removed by the next command writing in that folder; Ctrl-C
while the graph compiles prints one line. An input file whose name holds a control character
(restore, synth, eval) is refused before anything is written, since its name would become
part of an output's; paths echoed on stdout are escaped too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile import crafted
from tests.hostile.conftest import ROOT, Snapshot, assert_one_line_error, run_cli

ESC = "\x1b[31m"
# what must never reach a terminal or a file name raw (an oracle independent of ipt_ms.errors)
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text, repr(text)


def test_an_image_path_with_escapes_is_echoed_escaped(tmp_path, tiny_ckpt):
    (tmp_path / f"bad{ESC}.png").write_bytes(b"not an image")
    before = Snapshot.take(tmp_path)
    proc = run_cli("restore", "--weights", tiny_ckpt, f"bad{ESC}.png", "-o", "out", "-q", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "bad\\x1b[31m.png")
    _no_raw_controls(proc.stderr)
    before.assert_same(Snapshot.take(tmp_path))


def test_a_data_folder_with_escapes_is_echoed_escaped(tmp_path):
    (tmp_path / "cfg.yaml").write_text("kind: pretrain\n")
    proc = run_cli("pretrain", "--config", "cfg.yaml", "--data", f"nope{ESC}", "-o", "run", "-q", cwd=tmp_path,
                   timeout=120)
    assert_one_line_error(proc, "nope\\x1b[31m")
    _no_raw_controls(proc.stderr)


def _weights_with_task_names(tmp_path: Path, tiny_pt: Path, names: list[str]) -> Path:
    """tiny_pt's tensors in a .safetensors whose recorded architecture names its tasks `names`."""
    from safetensors.numpy import save_file

    from ipt_ms.convert.weights import SPEC_METADATA_KEY, load_weights

    spec, state = load_weights(tiny_pt)
    recorded = json.loads(spec.to_json())
    recorded["task_names"] = names
    path = tmp_path / "named.safetensors"
    save_file({k: v.copy() for k, v in state.items()}, str(path),
              metadata={SPEC_METADATA_KEY: json.dumps(recorded), "format": "pt"})
    return path


def test_a_task_name_with_a_newline_never_names_a_file(tmp_path, tiny_pt):
    from ipt_ms.convert.weights import load_weights

    names = list(load_weights(tiny_pt)[0].task_names)
    names[0] = names[0] + "\n"
    weights = _weights_with_task_names(tmp_path, tiny_pt, names)
    crafted.write_png(tmp_path / "a.png", crafted.photo())
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", weights, "--task", "0", "a.png", "-o", "out", "-q", cwd=tmp_path,
                   timeout=120)
    assert_one_line_error(proc, "named.safetensors", "sr_x2\\n")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_a_killed_writers_partial_files_are_removed_by_the_next_writer(tmp_path, tiny_ckpt):
    crafted.write_png(tmp_path / "a.png", crafted.photo())
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftovers = [out / f".b_sr_x2.png.partial-{dead.pid}-0123abcd.png",
                 out / f".b_sr_x2.npy.partial-{dead.pid}-89abcdef.npy"]
    alive = out / f".c_sr_x2.png.partial-{os.getpid()}-00000000.png"  # a live writer's: kept
    for path in leftovers + [alive]:
        path.write_bytes(b"x" * 1000)
        os.utime(path, (time.time() - 60, time.time() - 60))
    proc = run_cli("restore", "--weights", tiny_ckpt, "a.png", "-o", "out", "-q", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in leftovers)
    assert alive.exists()
    assert (out / "a_sr_x2.png").is_file()


def test_ctrl_c_while_compiling_prints_one_line(tmp_path, tiny_ckpt):
    crafted.write_png(tmp_path / "a.png", crafted.photo(120, 120))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(scratch), MS_OM_PATH=str(tmp_path / ".ms_om"))
    proc = subprocess.Popen([sys.executable, "-m", "ipt_ms", "restore", "--weights", str(tiny_ckpt), "a.png", "-o",
                             "out", "-q", "--compile-cache", str(tmp_path / "cache")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    # the per-process compile folder appears just before the first graph compiles
    while time.time() < deadline and not list(scratch.glob("ipt-ms-compile-*")) and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) == 1 and "interrupted by SIGINT" in lines[0], err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------ names from input files
@pytest.mark.parametrize("name", ["astro\nnaut.png", f"es{ESC}c.png", "rev\u202egnp.png", "csi\x9bm.png"],
                         ids=["newline", "esc", "bidi_override", "c1_csi"])
def test_restore_refuses_an_input_whose_name_would_put_a_control_character_in_an_output_name(tmp_path, tiny_ckpt,
                                                                                             name):
    crafted.write_png(tmp_path / "fine.png", crafted.photo())
    crafted.write_png(tmp_path / name, crafted.photo(seed=1))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "fine.png", name, "-o", "out", "-q", cwd=tmp_path, timeout=120)
    line = assert_one_line_error(proc, "control character", "rename the file")
    assert not CONTROL_CHARACTER.search(line), repr(line)
    before.assert_same(Snapshot.take(tmp_path, dirs=True))  # no output folder, no file of any name


def test_restore_prints_a_folder_with_escapes_escaped(tmp_path, tiny_ckpt):
    folder = tmp_path / f"in{ESC}put"
    crafted.write_png(folder / "a.png", crafted.photo())
    proc = run_cli("restore", "--weights", tiny_ckpt, folder / "a.png", "-o", f"out{ESC}", cwd=tmp_path, timeout=300,
                   env={"IPT_MS_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr
    _no_raw_controls(proc.stdout + proc.stderr)
    assert "in\\x1b[31mput/a.png -> out\\x1b[31m/a_sr_x2.png" in proc.stdout, proc.stdout
    assert (tmp_path / f"out{ESC}" / "a_sr_x2.png").is_file()


@pytest.mark.parametrize("name", ["rev\u202egnp.png", "csi\x9bm.png"], ids=["bidi_override", "c1_csi"])
def test_synth_refuses_an_input_whose_name_holds_a_control_character(tmp_path, name):
    crafted.write_png(tmp_path / "photos" / "fine.png", crafted.photo())
    crafted.write_png(tmp_path / "photos" / name, crafted.photo(seed=1))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("synth", "photos", "out", "--tasks", "sr_x2", "-q", cwd=tmp_path, timeout=120)
    line = assert_one_line_error(proc, "control character", "rename the file")
    assert not CONTROL_CHARACTER.search(line), repr(line)
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_eval_refuses_a_set_image_whose_name_holds_a_newline(tmp_path, tiny_ckpt):
    crafted.write_png(tmp_path / "data" / "Mine" / "fine.png", crafted.photo())
    crafted.write_png(tmp_path / "data" / "Mine" / "bad\nname.png", crafted.photo(seed=1))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("eval", "--weights", tiny_ckpt, "--task", "denoise_30", "--data", "data", "--sets", "Mine",
                   "--save-images", "-o", "res", "-q", cwd=tmp_path, timeout=120)
    line = assert_one_line_error(proc, "Mine", "bad\\nname.png", "control character")
    assert not CONTROL_CHARACTER.search(line), repr(line)
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_eval_default_output_folder_never_takes_a_control_character_from_the_weights_name(tmp_path, tiny_ckpt):
    weights = tmp_path / f"ti{ESC}ny\n.ckpt"
    weights.write_bytes(tiny_ckpt.read_bytes())
    crafted.write_png(tmp_path / "data" / "Mine" / "a.png", crafted.photo())
    proc = run_cli("eval", "--weights", weights.name, "--task", "denoise_30", "--data", "data", "--sets", "Mine",
                   "--device", "CPU", "--compile-cache", "off", "-q", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _no_raw_controls(proc.stdout + proc.stderr)
    folders = [p.name for p in (tmp_path / "eval-results").iterdir()]
    assert len(folders) == 1 and folders[0].startswith("ti_[31mny_-"), folders


def test_a_weights_name_with_escapes_is_printed_escaped(tmp_path):
    """The seeded-weights warning and `info` echo the weights' path: escaped, as error lines are."""
    weights = f"w{ESC}.pt"
    made = run_cli("make-weights", "--preset", "tiny", "--tasks", "sr_x2", "--seed", "0", "-o", weights, "-q",
                   cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr
    crafted.write_png(tmp_path / "a.png", crafted.photo())
    restored = run_cli("restore", "--weights", weights, "a.png", "-o", "out", "-q", cwd=tmp_path, timeout=300)
    info = run_cli("info", weights, cwd=tmp_path, timeout=120)
    for proc in (restored, info):
        assert proc.returncode == 0, proc.stderr
        _no_raw_controls(proc.stdout + proc.stderr)
    assert "warning: w\\x1b[31m.pt holds seeded random weights" in restored.stderr, restored.stderr
