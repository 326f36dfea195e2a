"""Provenance: every weights file the project writes records where it came from.

Real `ipt-ms` subprocesses on tiny models: make-weights records its seed, a conversion
records its source (and the source's own record, through .pt -> .ckpt -> .safetensors
-> .pt), a training run's checkpoints and exports record the run, step and best
validation PSNR; `info` prints it; `restore` and `eval` warn once for seeded weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

SEEDED_WARNING = "holds seeded random weights (make-weights --seed {seed}): the output is not a restoration"


def _ok(*args, cwd: Path, timeout: float = 300):
    proc = run_cli(*args, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def _provenance_line(path: Path, cwd: Path) -> str:
    lines = [line for line in _ok("info", path, cwd=cwd).stdout.splitlines() if line.startswith("provenance:")]
    assert len(lines) == 1, lines
    return lines[0]


def _record(path: Path, cwd: Path):
    return json.loads(_ok("info", path, "--json", cwd=cwd).stdout)["provenance"]


def _seeded_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "seeded random weights" in line]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from ipt_ms.eval.photos import write_sample_photos

    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder, ("astronaut", "chelsea"), height=64, width=64)
    return folder


def test_make_weights_records_the_seed_and_conversions_keep_the_chain(tmp_path):
    _ok("make-weights", "--preset", "tiny", "--seed", "3", "-o", "a.pt", "-q", cwd=tmp_path)
    seeded = {"kind": "seeded", "seed": 3, "init": "official"}
    assert _record(tmp_path / "a.pt", tmp_path) == seeded
    assert _provenance_line(tmp_path / "a.pt", tmp_path) == \
        "provenance: seeded random weights (seed 3, official initialisation): not trained"
    for src, dst in (("a.pt", "b.ckpt"), ("b.ckpt", "c.safetensors"), ("c.safetensors", "d.pt")):
        _ok("convert", src, dst, "-q", cwd=tmp_path)
    chain = {"kind": "converted", "from": "c.safetensors", "source_layout": "official", "source_provenance": {
        "kind": "converted", "from": "b.ckpt", "source_layout": "mindspore", "source_provenance": {
            "kind": "converted", "from": "a.pt", "source_layout": "official", "source_provenance": seeded}}}
    assert _record(tmp_path / "d.pt", tmp_path) == chain
    assert _provenance_line(tmp_path / "d.pt", tmp_path) == (
        "provenance: converted from 'c.safetensors' (official layout) <- converted from 'b.ckpt' (mindspore layout)"
        " <- converted from 'a.pt' (official layout) <- seeded random weights (seed 3, official initialisation): "
        "not trained")
    # the record travels where the architecture does: the official class still loads the .pt strictly
    from ipt_ms.convert.weights import load_weights
    from parity.torch_ipt import TorchIPT

    spec, _ = load_weights(tmp_path / "d.pt")
    TorchIPT(spec).load_state_dict(torch.load(tmp_path / "d.pt", weights_only=True), strict=True)
    # a single-task cut says which task it kept
    _ok("convert", "a.pt", "sr.safetensors", "--task", "sr_x2", "-q", cwd=tmp_path)
    assert _record(tmp_path / "sr.safetensors", tmp_path) == {
        "kind": "converted", "from": "a.pt", "source_layout": "official", "task": "sr_x2", "source_provenance": seeded}


def test_files_without_a_record_read_as_unknown(tmp_path):
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(2,), task_names=("sr_x2",))
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in seeded_state(spec, 0).items()},
               tmp_path / "bare.pt")  # what the official code writes: a bare state_dict
    assert _provenance_line(tmp_path / "bare.pt", tmp_path) == "provenance: unknown (not recorded)"
    _ok("convert", "bare.pt", "zoo.ckpt", "--layout", "zoo", "--num-heads", "2", "-q", cwd=tmp_path)
    assert _record(tmp_path / "zoo.ckpt", tmp_path) is None  # zoo layouts carry no metadata
    _ok("convert", "bare.pt", "ours.ckpt", "--num-heads", "2", "-q", cwd=tmp_path)
    assert _provenance_line(tmp_path / "ours.ckpt", tmp_path) == \
        "provenance: converted from 'bare.pt' (official layout) <- unknown (not recorded)"


def test_training_records_run_step_and_best_psnr_and_restore_does_not_warn(tmp_path, photos):
    import yaml

    from tests.hostile.test_training import TINY

    config = {**TINY, "val": {"every": 2, "holdout": 1, "crop": 48, "ssim": False, "strips": 0},
              "output": {**TINY["output"], "checkpoint_every": 2}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    _ok("pretrain", "--config", "cfg.yaml", "--data", photos, "-o", "myrun", "--max-steps", "4", "-q",
        cwd=tmp_path, timeout=600)
    run = tmp_path / "myrun"
    final = _record(run / "model.ckpt", tmp_path)
    assert {k: final[k] for k in ("kind", "run", "step", "recipe", "init", "seed")} == {
        "kind": "trained", "run": "myrun", "step": 4, "recipe": "pretrain", "init": None, "seed": 0}
    assert set(final["best_val_psnr"]) == {"denoise_30"} and isinstance(final["best_val_psnr"]["denoise_30"], float)
    for step in (2, 4):
        record = _record(run / "checkpoints" / f"step_{step:09d}.ckpt", tmp_path)
        assert (record["kind"], record["run"], record["step"]) == ("trained", "myrun", step)
    best = _record(run / "best_denoise_30.ckpt", tmp_path)
    assert (best["kind"], best["selected"], best["run"]) == ("trained", "denoise_30", "myrun")
    line = _provenance_line(run / "model.ckpt", tmp_path)
    assert line.startswith("provenance: trained: run 'myrun' (pretrain), step 4; best validation PSNR-Y: "
                           "denoise_30 "), line
    proc = _ok("restore", "--weights", run / "model.ckpt", "--task", "denoise_30", photos / "astronaut.png", "-o",
               "out", "-q", "--mode", "pynative", cwd=tmp_path)
    assert _seeded_warnings(proc.stderr) == []


def test_restore_and_eval_warn_once_for_seeded_weights(tmp_path, photos):
    from ipt_ms.data.synth import synthesize

    _ok("make-weights", "--preset", "tiny", "--seed", "5", "-o", "seeded.ckpt", "-q", cwd=tmp_path)
    _ok("convert", "seeded.ckpt", "seeded.pt", "-q", cwd=tmp_path)  # still seeded weights, one conversion on
    for weights in ("seeded.ckpt", "seeded.pt"):
        proc = _ok("restore", "--weights", weights, "--task", "sr_x2", photos, "-o", f"out-{weights}", "-q",
                   "--mode", "pynative", cwd=tmp_path)
        assert proc.stdout.count("_sr_x2.png") == 2  # both photos restored, one warning
        assert _seeded_warnings(proc.stderr) == [f"warning: {weights} " + SEEDED_WARNING.format(seed=5)]
    synthesize(photos, tmp_path / "bench" / "benchmark" / "Mini", tasks=["sr_x2"], seed=0, progress=False)
    proc = _ok("eval", "--weights", "seeded.pt", "--task", "sr_x2", "--data", "bench", "--sets", "Mini",
               "--framework", "torch", "--no-ssim", "-o", "ev", "-q", cwd=tmp_path)
    assert _seeded_warnings(proc.stderr) == ["warning: seeded.pt " + SEEDED_WARNING.format(seed=5)]


def test_an_onnx_export_records_its_weights_and_warns_when_they_are_seeded(tmp_path, photos):
    _ok("make-weights", "--preset", "tiny", "--seed", "9", "-o", "seeded.pt", "-q", cwd=tmp_path)
    _ok("export", "--weights", "seeded.pt", "--task", "sr_x2", "-o", "seeded.onnx", "--device", "cpu", "-q",
        cwd=tmp_path)
    from ipt_ms.export import read_onnx_info

    assert read_onnx_info(tmp_path / "seeded.onnx").provenance == {
        "kind": "converted", "from": "seeded.pt", "source_layout": "official", "task": "sr_x2",
        "source_provenance": {"kind": "seeded", "seed": 9, "init": "official"}}
    proc = _ok("restore", "--weights", "seeded.onnx", "--framework", "onnx", "--task", "sr_x2", photos, "-o", "out",
               "-q", cwd=tmp_path)
    assert _seeded_warnings(proc.stderr) == ["warning: seeded.onnx " + SEEDED_WARNING.format(seed=9)]


def _safetensors_with(path: Path, provenance: str) -> None:
    from safetensors.numpy import save_file

    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(2,), task_names=("sr_x2",))
    save_file({k: np.ascontiguousarray(v) for k, v in seeded_state(spec, 0).items()}, str(path),
              metadata={"ipt_spec": spec.to_json(), "ipt_provenance": provenance, "format": "pt"})


@pytest.mark.parametrize("text, words", [
    ("{not json", "not readable JSON"),
    ('"seeded"', "not a record with a 'kind'"),
    ('{"kind": "converted", "source_provenance": {"seed": 1}}', "not a record with a 'kind'"),
    ("[" * 100_000, "nested too deeply"),
])
def test_a_malformed_record_is_one_line_naming_the_file(tmp_path, text, words):
    weights = tmp_path / "bad.safetensors"
    _safetensors_with(weights, text)
    before = Snapshot.take(tmp_path)
    for command in (["info", weights], ["convert", weights, tmp_path / "out.ckpt"]):
        proc = run_cli(*command, cwd=tmp_path, timeout=120)
        assert_one_line_error(proc, "bad.safetensors", "ipt_provenance", words)
    before.assert_same(Snapshot.take(tmp_path))


def test_a_record_is_printed_with_its_control_characters_escaped(tmp_path):
    weights = tmp_path / "w.safetensors"
    _safetensors_with(weights, json.dumps({"kind": "trained", "run": "\x1b[31mred\x1b]0;title\x07", "step": 1}))
    line = _provenance_line(weights, tmp_path)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b[31mred" in line
