"""Per-machine CPU levers (`ipt_ms.levers`): measured once, stored beside the compile cache,
reused without a new trial, and never trusted blindly: a crafted or damaged stored choice is
one line and the built-in levers, a user's IPT_MS_CONV_AS_MATMUL wins, and a choice stored
for another CPU or ISA is not used. No test asserts on timings (which lever wins)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ipt_ms import levers

ROOT = Path(__file__).resolve().parents[2]


def cli(args: list[str], cache: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("IPT_MS_LEVERS", "IPT_MS_CONV_AS_MATMUL")}
    environ.update(IPT_MS_COMPILE_CACHE=str(cache), **env)
    return subprocess.run([sys.executable, "-m", "ipt_ms", *args], capture_output=True, text=True, env=environ,
                          cwd=ROOT, timeout=600)


def restore(weights: Path, photo: Path, out: Path, cache: Path, *extra: str, **env) -> subprocess.CompletedProcess:
    return cli(["restore", "--weights", str(weights), "--task", "sr_x2", str(photo), "-o", str(out), "--overwrite",
                *extra], cache, **env)


def stored_files(cache: Path) -> list[Path]:
    return sorted((cache / "levers").glob("*.json"))


def messages(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr lines, without the seeded-weights warning every tiny-model run prints."""
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and "seeded random weights" not in ln]


# ------------------------------------------------------------------------------ real processes
def test_tune_stores_a_choice_that_restore_then_uses_without_a_trial(tiny_ckpt, photo_png, tmp_path):
    cache = tmp_path / "cache"
    tuned = cli(["tune", str(tiny_ckpt), "--task", "sr_x2"], cache)
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    lines = [ln for ln in tuned.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("levers: measured per tile on ") and "-> picked " in lines[0]
    for setting in ("im2col x1", "im2col x8", "native x1", "native x8"):
        assert setting in lines[0]  # every candidate, with its time
    (path,) = stored_files(cache)
    assert f"stored in {path}" in lines[0]
    record = json.loads(path.read_text())
    choice = levers.Levers(record["choice"]["conv_as_matmul"], record["choice"]["call_tiles"])

    done = restore(tiny_ckpt, photo_png, tmp_path / "out", cache)  # the default policy: stored
    assert done.returncode == 0, done.stderr[-2000:]
    assert messages(done) == [f"ipt-ms: levers stored for this machine: {choice.describe()}"]
    assert (tmp_path / "out" / f"{photo_png.stem}_sr_x2.png").is_file()
    assert stored_files(cache) == [path] and json.loads(path.read_text()) == record  # no new trial, no rewrite


def test_first_use_trial_measures_once_then_reuses(tiny_ckpt, photo_png, tmp_path):
    cache = tmp_path / "cache"
    first = restore(tiny_ckpt, photo_png, tmp_path / "out", cache, "--levers", "trial")
    assert first.returncode == 0, first.stderr[-2000:]
    trial_lines = [ln for ln in messages(first) if "levers: measured" in ln]
    assert len(trial_lines) == 1 and "-> picked " in trial_lines[0] and " s, " in trial_lines[0], first.stderr
    (path,) = stored_files(cache)
    written = path.stat().st_mtime_ns

    second = restore(tiny_ckpt, photo_png, tmp_path / "out", cache, IPT_MS_LEVERS="trial")
    assert second.returncode == 0, second.stderr[-2000:]
    assert not [ln for ln in messages(second) if "measured" in ln], second.stderr
    assert [ln for ln in messages(second) if "levers stored for this machine" in ln]
    assert path.stat().st_mtime_ns == written

    built_in = restore(tiny_ckpt, photo_png, tmp_path / "out", cache, "--levers", "default")
    assert built_in.returncode == 0 and messages(built_in) == [], built_in.stderr


def test_a_crafted_stored_choice_is_one_line_in_a_real_run(tiny_ckpt, photo_png, tmp_path, monkeypatch, tiny_spec):
    cache = tmp_path / "cache"
    monkeypatch.setenv("IPT_MS_COMPILE_CACHE", str(cache))
    path = write_record(tiny_spec, {"conv_as_matmul": "rm -rf /", "call_tiles": 10 ** 9})
    before = path.read_bytes()
    done = restore(tiny_ckpt, photo_png, tmp_path / "out", cache)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = messages(done)
    assert len(lines) == 1 and lines[0].startswith(f"ipt-ms: stored levers {path} not used: "), lines
    assert "using the built-in levers" in lines[0] and "Traceback" not in done.stderr
    assert path.read_bytes() == before  # the default policy only reads


def test_a_bad_levers_setting_is_one_line(tiny_ckpt, photo_png, tmp_path):
    done = restore(tiny_ckpt, photo_png, tmp_path / "out", tmp_path / "cache", IPT_MS_LEVERS="fastest")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ipt-ms restore: error: IPT_MS_LEVERS='fastest': use stored, trial or default"]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ in process
def record_for(key: dict, choice: dict) -> dict:
    return {"key": key, "choice": choice, "seconds_per_tile": {"im2col x8": 0.5}, "measured": "2026-01-01 00:00:00"}


def write_record(spec, choice: dict, key: dict | None = None, name_key: dict | None = None) -> Path:
    """A stored choice file for `spec`'s sr_x2 on this machine (or for `key`), named after `name_key`."""
    key = key or levers.choice_key(spec, "sr_x2")
    folder = levers.levers_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / levers._file_name(name_key or key)
    path.write_text(json.dumps(record_for(key, choice)))
    return path


@pytest.fixture
def cache(levers_cache):
    return levers_cache


@pytest.fixture
def fake_measure(monkeypatch):
    """A trial without timing: one tile per call 'wins', then native convolutions; records each call."""
    calls = []

    def measure(spec, task, conv_options, tile_options, repeats=3, seed=0):
        calls.append((conv_options, tile_options))
        return {(c, t): (0.1 if t == 1 else 0.2) - (0.0 if c else 0.01) for c in conv_options for t in tile_options}

    monkeypatch.setattr(levers, "measure", measure)
    return calls


GOOD = {"conv_as_matmul": False, "call_tiles": 1}


def conv_flags(net) -> set:
    from ipt_ms.models import Conv2d

    return {cell.as_matmul for _, cell in net.cells_and_names() if isinstance(cell, Conv2d)}


def test_a_stored_choice_builds_the_predictor_and_the_users_env_var_wins(cache, tiny_spec, tiny_ckpt, monkeypatch):
    from ipt_ms.predictors import create_predictor

    write_record(tiny_spec, GOOD)
    predictor, _ = create_predictor("mindspore", str(tiny_ckpt), "sr_x2", batch_size=64, device="cpu")
    assert conv_flags(predictor.net) == {False} and predictor.call_tiles == 1

    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "1")  # the user's setting beats the stored False
    predictor, _ = create_predictor("mindspore", str(tiny_ckpt), "sr_x2", batch_size=64, device="cpu")
    assert conv_flags(predictor.net) == {True} and predictor.call_tiles == 1

    monkeypatch.delenv("IPT_MS_CONV_AS_MATMUL")
    monkeypatch.setenv("IPT_MS_LEVERS", "default")
    predictor, _ = create_predictor("mindspore", str(tiny_ckpt), "sr_x2", batch_size=64, device="cpu")
    assert conv_flags(predictor.net) == {True} and predictor.call_tiles == 8  # the built-in CPU levers


def test_a_trial_with_the_conv_setting_forced_compares_tiles_only(cache, tiny_spec, fake_measure, monkeypatch):
    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "1")
    monkeypatch.setenv("IPT_MS_LEVERS", "trial")
    chosen = levers.choose_levers(tiny_spec, "sr_x2")
    assert fake_measure == [((True,), (1, 8))]
    assert chosen.call_tiles == 1 and chosen.conv_as_matmul is None  # None: the env var decides
    record = json.loads(next((cache / "levers").glob("*.json")).read_text())
    assert record["choice"] == {"conv_as_matmul": None, "call_tiles": 1}  # not compared, so not stored as a pick


def _huge(path: Path) -> None:
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record) + " " * (levers.MAX_BYTES + 10))  # valid JSON, but far too big


def _symlink(path: Path) -> None:
    elsewhere = path.with_name("elsewhere.txt")
    path.rename(elsewhere)
    path.symlink_to(elsewhere)  # a valid record behind a link: a link in the store is never followed


def _other_key_inside(path: Path) -> None:
    record = json.loads(path.read_text())
    record["key"]["onednn_isa"] = "AVX512_CORE_AMX" if record["key"]["onednn_isa"] != "AVX512_CORE_AMX" else "AVX2"
    path.write_text(json.dumps(record))  # another machine's file copied under this machine's name


def _set(field, value):
    def change(path: Path) -> None:
        record = json.loads(path.read_text())
        if field in ("conv_as_matmul", "call_tiles"):
            record["choice"][field] = value
        else:
            record[field] = value
        path.write_text(json.dumps(record))
    return change


CORRUPT = {
    "unknown tile count": (_set("call_tiles", 3), "call_tiles is 3"),
    "tile count as a float": (_set("call_tiles", 8.0), "call_tiles is 8.0"),
    "tile count as a bool": (_set("call_tiles", True), "call_tiles is True"),
    "conv as a string": (_set("conv_as_matmul", "yes"), "conv_as_matmul is 'yes'"),
    "conv as a number": (_set("conv_as_matmul", 1), "conv_as_matmul is 1"),
    "choice as a list": (_set("choice", [False, 1]), "its choice does not hold"),
    "extra field": (_set("command", "rm -rf ~"), "does not have the fields"),
    "times not numbers": (_set("seconds_per_tile", {"x": "fast"}), "seconds_per_tile"),
    "not JSON": (lambda p: p.write_bytes(b"\x00\xff{not json"), "not valid JSON"),
    "deeply nested": (lambda p: p.write_text("[" * 100000 + "]" * 100000), "over 16,384 bytes"),
    "nested within the size": (lambda p: p.write_text("[" * 8000 + "]" * 8000), "does not have the fields"),
    "empty": (lambda p: p.write_bytes(b""), "not valid JSON"),
    "huge": (_huge, "over 16,384 bytes"),
    "symlink": (_symlink, "symbolic link"),
    "another machine's key": (_other_key_inside, "stored for another CPU, ISA"),
    "a folder": (lambda p: (p.unlink(), p.mkdir()), "not a regular file"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_a_damaged_or_crafted_choice_is_one_line_and_the_built_in_levers(case, cache, tiny_spec, caplog):
    path = write_record(tiny_spec, GOOD)
    damage, reason = CORRUPT[case]
    damage(path)
    caplog.set_level(logging.INFO, logger="ipt_ms")
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"stored levers {path} not used: "), lines
    assert reason in lines[0] and lines[0].endswith("; using the built-in levers") and "\n" not in lines[0]


def test_a_choice_in_a_folder_others_can_write_is_not_used(cache, tiny_spec, caplog):
    path = write_record(tiny_spec, GOOD)
    path.parent.chmod(0o777)  # anyone could have planted it
    caplog.set_level(logging.INFO, logger="ipt_ms")
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"stored levers {path} not used: its folder cannot be trusted (others can write to it")


def test_under_trial_a_damaged_choice_is_measured_afresh_and_replaced(cache, tiny_spec, fake_measure, caplog,
                                                                      monkeypatch):
    path = write_record(tiny_spec, {"conv_as_matmul": True, "call_tiles": 99})
    monkeypatch.setenv("IPT_MS_LEVERS", "trial")
    caplog.set_level(logging.INFO, logger="ipt_ms")
    chosen = levers.choose_levers(tiny_spec, "sr_x2")
    assert len(fake_measure) == 1 and chosen == levers.Levers(False, 1, origin="trial")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].endswith("call_tiles is 99, not one of 1, 8 or null; measuring afresh")
    assert lines[1].startswith("levers: measured per tile") and len(lines) == 2
    assert json.loads(path.read_text())["choice"] == {"conv_as_matmul": False, "call_tiles": 1}
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers(False, 1, origin="stored")
    assert len(fake_measure) == 1  # the second call reads the new file


def test_a_choice_for_another_cpu_or_isa_is_not_used(cache, tiny_spec, fake_measure, monkeypatch, caplog):
    from ipt_ms import machine

    here = levers.choice_key(tiny_spec, "sr_x2")
    other_isa = "AVX512_CORE_AMX" if here["onednn_isa"] != "AVX512_CORE_AMX" else "AVX2"
    for field, value in (("cpu", "Some Other CPU"), ("onednn_isa", other_isa), ("mindspore", "0.0.1")):
        write_record(tiny_spec, GOOD, key={**here, field: value})  # valid files, each under its own key
    caplog.set_level(logging.INFO, logger="ipt_ms")
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers()
    assert caplog.records == []  # not refused: simply not this machine's
    assert levers.describe().startswith(f"none for {machine.heading()}; run `ipt-ms tune")

    write_record(tiny_spec, GOOD)  # now one for this machine...
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers(False, 1, origin="stored")
    assert "native convolutions, 1 tile per call" in levers.describe()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")  # ...which a capped ISA does not use
    assert levers.choice_key(tiny_spec, "sr_x2")["onednn_isa"] == "SSE41" != here["onednn_isa"]
    assert levers.choose_levers(tiny_spec, "sr_x2") == levers.Levers()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    bigger = tiny_spec.replace(num_layers=2)  # nor another model size
    assert levers.choose_levers(bigger, "sr_x2") == levers.Levers()
    assert fake_measure == []


def test_doctor_reports_the_stored_choice(cache, tiny_spec):
    from ipt_ms.doctor import DoctorOptions, environment

    assert environment(DoctorOptions())["levers"]["stored"].startswith("none for ")
    write_record(tiny_spec, GOOD)
    shown = environment(DoctorOptions())["levers"]["stored"]
    assert "8 feats, 1+1 layers, 24 px, scale 2, CPU graph: native convolutions, 1 tile per call" in shown


def test_tune_refuses_in_one_line_before_measuring(tmp_path):
    unknown = cli(["tune", "ipt_nonexistent"], tmp_path / "cache")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "'ipt_nonexistent' is neither a registered model (" in unknown.stderr and "ipt_tiny" in unknown.stderr
    off = cli(["tune", "ipt_tiny", "--compile-cache", "off"], tmp_path / "cache")
    assert off.returncode == 2 and off.stderr.strip().splitlines() == [
        "ipt-ms tune: error: the compile cache is off, and stored levers are kept in it; give --compile-cache DIR "
        "or unset IPT_MS_COMPILE_CACHE"]
    task = cli(["tune", "ipt_tiny", "--task", "derain"], tmp_path / "cache")
    assert task.returncode == 2 and "unknown task 'derain'" in task.stderr and len(task.stderr.splitlines()) == 1
    assert not (tmp_path / "cache" / "levers").exists()


def test_tune_takes_a_registered_name():
    from ipt_ms.cli.tune import model_spec_for
    from ipt_ms.spec import IPTSpec

    assert model_spec_for("ipt_tiny", "0", {}) == IPTSpec.tiny()


# ------------------------------------------------------------------------------ the library
class CallSizes:
    """A network wrapper that records how many tiles each call holds (the tiles-per-call lever at work)."""

    def __init__(self, net):
        self.net, self.sizes = net, []

    def __call__(self, x, task_idx):
        self.sizes.append(int(x.shape[0]))
        return self.net(x, task_idx)

    def __getattr__(self, name):
        return getattr(self.net, name)


def restored_call_sizes(net, spec, **kwargs) -> list[int]:
    """restore_image on a 40x40 photo crop (16 tiles of 24 px); the tile count of every network call."""
    from skimage import data

    from ipt_ms.inference import restore_image

    spy = CallSizes(net)
    out = restore_image(spy, spec, data.astronaut()[100:140, 150:190], "sr_x2", **kwargs)
    assert out.shape == (80, 80, 3) and np.isfinite(out).all()
    return spy.sizes


def test_load_model_and_restore_image_follow_the_stored_choice(cache, tiny_spec, tiny_ckpt, fake_measure):
    from ipt_ms.inference import load_model

    write_record(tiny_spec, GOOD)  # as `ipt-ms tune` stores it: native convolutions, 1 tile per call
    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph")
    assert conv_flags(net) == {False}
    sizes = restored_call_sizes(net, spec)
    assert sizes and set(sizes) == {1}, sizes
    assert fake_measure == []  # a stored choice: never a trial


def test_create_model_follows_the_stored_choice_and_levers_default_ignores_it(cache, tiny_spec, tiny_ckpt,
                                                                             monkeypatch):
    import ipt_ms
    from ipt_ms.inference import load_model, predictor_for
    from ipt_ms.spec import IPTSpec

    write_record(IPTSpec.tiny(), GOOD)  # ipt_tiny is IPTSpec.tiny (16 features; tiny_spec has 8)
    write_record(tiny_spec, GOOD)
    net, spec = ipt_ms.create_model("ipt_tiny", device="cpu", mode="graph")
    assert conv_flags(net) == {False}
    assert predictor_for(net, spec, "sr_x2").levers == levers.Levers(False, 1, origin="stored")

    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph", levers="default")
    assert conv_flags(net) == {True}  # the built-in CPU convolutions, whatever is stored
    predictor = predictor_for(net, spec, "sr_x2")  # the net keeps its setting
    assert predictor.call_tiles == 8 and predictor.levers == levers.Levers(True, 8, origin="built-in")
    assert max(restored_call_sizes(net, spec)) == 8
    assert predictor_for(net, spec, "sr_x2", levers="stored").call_tiles == 1  # asked for: the stored tiles

    monkeypatch.setenv("IPT_MS_LEVERS", "default")  # the environment, as for the CLI
    net, _ = ipt_ms.create_model("ipt_tiny", device="cpu", mode="graph")
    assert conv_flags(net) == {True} and predictor_for(net, spec, "sr_x2").call_tiles == 8


@pytest.mark.parametrize("case", ["not JSON", "another machine's key", "unknown tile count"])
def test_the_library_warns_in_one_line_about_a_bad_stored_choice_and_uses_the_built_in_levers(
        case, cache, tiny_spec, tiny_ckpt, caplog):
    from ipt_ms.inference import load_model, predictor_for

    path = write_record(tiny_spec, GOOD)
    damage, reason = CORRUPT[case]
    damage(path)
    caplog.set_level(logging.INFO, logger="ipt_ms")
    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph")
    predictor = predictor_for(net, spec, "sr_x2")
    assert conv_flags(net) == {True} and predictor.call_tiles == 8
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"stored levers {path} not used: "), lines
    assert reason in lines[0] and lines[0].endswith("; using the built-in levers")
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_the_library_measures_only_when_asked(cache, tiny_spec, tiny_ckpt, fake_measure):
    from ipt_ms.errors import IPTError
    from ipt_ms.inference import load_model, predictor_for

    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph")  # nothing stored: built-in, no trial
    assert fake_measure == [] and conv_flags(net) == {True} and not (cache / "levers").exists()
    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph", levers="trial")
    assert len(fake_measure) == 1 and conv_flags(net) == {False}  # the fake trial's pick, stored
    assert predictor_for(net, spec, "sr_x2").levers == levers.Levers(False, 1, origin="trial")
    assert len(fake_measure) == 1 and len(stored_files(cache)) == 1
    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph", levers="trial")  # a new process would...
    assert predictor_for(net, spec, "sr_x2").levers == levers.Levers(False, 1, origin="stored")  # ...read it
    assert len(fake_measure) == 1
    with pytest.raises(IPTError, match=r"^levers='fastest': use stored, trial or default$"):
        load_model(str(tiny_ckpt), device="cpu", levers="fastest")


def test_the_eval_engine_takes_levers(cache, tiny_spec, tiny_ckpt):
    from ipt_ms.eval.engine import create_runner

    write_record(tiny_spec, GOOD)
    stored = create_runner("mindspore", str(tiny_ckpt), "sr_x2", device="cpu")
    assert stored.predictor.levers == levers.Levers(False, 1, origin="stored")
    built_in = create_runner("mindspore", str(tiny_ckpt), "sr_x2", device="cpu", levers="default")
    assert built_in.predictor.levers == levers.Levers(True, 8, origin="built-in")


def test_levers_are_resolved_once_per_network_and_task(cache, tiny_ckpt, fake_measure, monkeypatch):
    """With no compile cache a trial cannot be stored: restoring image after image must not re-measure."""
    from ipt_ms.inference import load_model, predictor_for

    monkeypatch.setenv("IPT_MS_COMPILE_CACHE", "off")
    net, spec = load_model(str(tiny_ckpt), device="cpu", mode="graph", levers="trial")
    assert len(fake_measure) == 1
    for _ in range(3):  # restore_image's predictor, image after image
        assert predictor_for(net, spec, "sr_x2").levers == levers.Levers(False, 1, origin="trial")
    assert len(fake_measure) == 1
    for _ in range(2):  # another task's scale: its own trial, once
        predictor_for(net, spec, "sr_x3")
    assert len(fake_measure) == 2
