"""ONNX Runtime as the third framework: `create_predictor('onnx', ...)`, whole-image restore,
the restore / parity / parity-bench commands, and the three-way parity report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipt_ms.cli import main
from ipt_ms.errors import IPTError
from ipt_ms.inference import restore_array
from ipt_ms.predictors import create_predictor
from tests.export.conftest import TASK


def _rel(a, b) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


def test_predictor_interface_and_whole_image_restore(ms_onnx, tiny_pt, tiny_spec):
    from skimage import data

    predictor, spec = create_predictor("onnx", str(ms_onnx), TASK, batch_size=4)
    assert (predictor.framework, predictor.task_idx, predictor.scale, spec) == ("onnx", 1, 3, tiny_spec)
    assert predictor.stage_names == tiny_spec.stage_names(TASK)[:-1]
    image = data.astronaut()[200:250, 180:237]  # 50x57: several tiles, a short last batch
    reference, _ = create_predictor("torch", str(tiny_pt), TASK, batch_size=4)
    out = restore_array(predictor, image, scale=3, patch=spec.patch_size)
    expected = restore_array(reference, image, scale=3, patch=spec.patch_size)
    assert out.shape == (150, 171, 3) and _rel(out, expected) < 1e-4
    for alias in ("ort", "onnxruntime"):  # the same task by name or by index
        assert create_predictor(alias, str(ms_onnx), 1)[0].task_idx == 1


def test_wrong_task_and_bad_device(ms_onnx):
    with pytest.raises(IPTError, match=r"holds task sr_x3 \(index 1\), not 'sr_x2'"):
        create_predictor("onnx", str(ms_onnx), "sr_x2")
    with pytest.raises(IPTError, match="unknown task"):
        create_predictor("onnx", str(ms_onnx), "derain")
    with pytest.raises(IPTError, match="num_heads=2"):
        create_predictor("onnx", str(ms_onnx), TASK, num_heads=4)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(IPTError, match="no CUDAExecutionProvider"):
            create_predictor("onnx", str(ms_onnx), TASK, device="gpu")


def test_fixed_batch_file_is_padded(ms_onnx, tmp_path, tiles):
    """A file with a fixed batch (not ours) still runs any number of tiles."""
    import onnx

    model = onnx.load(str(ms_onnx))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 2
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    fixed, _ = create_predictor("onnx", str(tmp_path / "fixed.onnx"), TASK, batch_size=64)
    dynamic, _ = create_predictor("onnx", str(ms_onnx), TASK)
    assert fixed.fixed_batch == 2 and dynamic.fixed_batch is None
    np.testing.assert_allclose(fixed(tiles), dynamic(tiles), rtol=0, atol=1e-3)
    assert fixed.stages(tiles[:1])["body.encoder.0"].shape[1] == 1


def test_restore_command_with_onnx(ms_onnx, photo_png, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["restore", "--weights", str(ms_onnx), "--framework", "onnx", "--task", TASK, str(photo_png),
                 "-o", str(out), "-q", "--save-raw"]) == 0
    raw = np.load(out / f"astronaut_{TASK}.npy")
    assert raw.shape == (210, 255, 3)
    assert (out / f"astronaut_{TASK}.png").is_file()
    assert main(["restore", "--weights", str(ms_onnx), "--framework", "onnx", "--task", "sr_x2", str(photo_png),
                 "-o", str(tmp_path / "bad"), "-q"]) == 2
    assert "holds task sr_x3" in capsys.readouterr().err


def test_three_way_parity_command(tiny_pt, ms_onnx, torch_onnx, tmp_path, capsys):
    """--onnx with files from both sources: the one holding the task is compared, every stage."""
    report_dir = tmp_path / "rep"
    assert main(["parity", str(tiny_pt), "--task", TASK, "--onnx", str(torch_onnx), "--report",
                 str(report_dir)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch end to end: 13/13 stage(s) compared pass" in printed and "parity PASS" in printed
    data = json.loads((report_dir / "report.json").read_text())
    onnx_stages = data["others"]["onnx"]
    assert [s["name"] for s in onnx_stages] == [s["name"] for s in data["stages"]]
    assert all(s["ok"] for s in onnx_stages) and onnx_stages[-1]["max_rel_err"] < 1e-4
    assert "exported from torch" in data["sources"]["onnx"]
    assert "## ONNX Runtime (" in (report_dir / "report.md").read_text()
    # a file for another task only: nothing to compare -> a one-line error
    assert main(["parity", str(tiny_pt), "--task", "sr_x2", "--onnx", str(ms_onnx)]) == 2
    assert "none of the ONNX files holds" in capsys.readouterr().err


def test_parity_exports_on_the_fly_and_catches_a_wrong_file(tiny_pt, tiny_spec, tiny_state, tmp_path):
    from ipt_ms.convert.weights import save_weights
    from ipt_ms.export import export_weights
    from parity.compare import run_parity

    report = run_parity(str(tiny_pt), task="denoise_30", onnx_export="mindspore", device="cpu")
    assert report.ok and report.others["onnx"][-1].name == "output"
    assert [d.name for d in report.others["onnx"]] == tiny_spec.stage_names("denoise_30")
    # an ONNX file made from different weights (one decoder weight x1.1) fails at that stage
    bad = dict(tiny_state)
    key = "body.decoder.layers.0.linear2.weight"
    bad[key] = bad[key] * 1.1
    save_weights(tmp_path / "bad.pt", bad, tiny_spec)
    (exported,) = export_weights(tmp_path / "bad.pt", tmp_path / "bad.onnx", task=TASK, with_stages=True,
                                 device="cpu")
    report = run_parity(str(tiny_pt), task=TASK, onnx=[str(exported.path)], device="cpu")
    assert not report.ok and all(s.ok for s in report.stages)
    assert report.failures[0].name == "onnx:body.decoder.0"


def test_parity_bench_mindspore_vs_onnx(tiny_pt, ms_onnx, tmp_path, capsys):
    """The benchmark-level comparison takes ONNX Runtime like any framework (PSNR per image)."""
    from ipt_ms.eval.photos import SAMPLE_PHOTOS, write_sample_photos

    write_sample_photos(tmp_path / "photos", SAMPLE_PHOTOS[:2], height=30, width=36)
    assert main(["synth", str(tmp_path / "photos"), str(tmp_path / "data" / "Photos"), "--tasks", TASK,
                 "--quiet"]) == 0
    out = tmp_path / "bench"
    code = main(["parity-bench", str(ms_onnx), "--ckpt", str(tiny_pt), "--frameworks", "torch,onnx",
                 "--task", TASK, "--data", str(tmp_path / "data"), "--sets", "Photos", "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr()
    report = json.loads((out / "parity_bench.json").read_text())
    assert report["ok"] and len(report["images"]) == 2
    for record in report["images"]:
        assert set(record["runs"]) == {"torch", "onnx", "bicubic"}  # the two frameworks and the no-model baseline
        assert abs(record["runs"]["torch"]["psnr"] - record["runs"]["onnx"]["psnr"]) <= 0.01
