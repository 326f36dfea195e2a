"""`ipt-ms eval` on miniature benchmark folders: tables, resume, and bad input.

The PyTorch twin runs the model here (no graph compilation, so these stay fast); the
MindSpore path is exercised by the parity-bench tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipt_ms.cli import main
from ipt_ms.data.imageio import read_image
from ipt_ms.data.imresize import imresize
from ipt_ms.inference import restore_array
from ipt_ms.metrics import psnr, ssim

NAMES = ["astronaut", "chelsea", "coffee"]


def _eval(weights, root, out, *extra):
    return main(["eval", "--weights", str(weights), "--task", "sr_x2", "--data", str(root), "--sets", "Mini",
                 "--framework", "torch", "-o", str(out), "-q", *extra])


def _copy_set(bench_root, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(bench_root, root)
    return root


def test_eval_tables_match_a_direct_computation(bench_root, eval_weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(eval_weights, bench_root, out, "--save-images") == 0
    printed = capsys.readouterr().out
    from ipt_ms.eval.engine import weights_digest

    digest = weights_digest(eval_weights)[:8]
    assert "PSNR (dB, Y)" in printed and f"IPT tiny.pt ({digest}) [torch, official]" in printed
    assert "| Bicubic (no model)" in printed and "|   gain over bicubic" in printed
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["images"]] == NAMES

    from ipt_ms.predictors import create_predictor

    predictor, spec = create_predictor("torch", str(eval_weights), "sr_x2")
    set_dir = bench_root / "benchmark" / "Mini"
    expected = []
    for rec in report["images"]:
        lr = read_image(set_dir / "LR_bicubic" / "X2" / f"{rec['name']}x2.png")
        hr = read_image(set_dir / "HR" / f"{rec['name']}.png")[:lr.shape[0] * 2, :lr.shape[1] * 2]
        sr = restore_array(predictor, lr, scale=2, patch=spec.patch_size)
        run = rec["runs"]["torch"]
        assert run["psnr"] == pytest.approx(psnr(sr, hr, 2), abs=1e-9)
        assert run["ssim"] == pytest.approx(ssim(sr, hr, 2), abs=1e-9)
        assert run["psnr_rgb"] == pytest.approx(psnr(sr, hr, 2, channel="rgb"), abs=1e-9)
        base = rec["runs"]["bicubic"]  # the baseline: MATLAB bicubic of the LR file, same metric code
        assert base["psnr"] == pytest.approx(psnr(imresize(lr, scale=2), hr, 2), abs=1e-9)
        saved = read_image(out / "images" / "Mini" / f"{rec['name']}.png")
        assert psnr(saved, hr, 2) == pytest.approx(run["psnr"], abs=1e-9)  # the PNG is the scored output
        expected.append(run["psnr"])
    mean = report["summary"]["torch"]["Mini"]["psnr"]
    assert mean == pytest.approx(np.mean(expected), abs=1e-12)
    assert f"{mean:.2f}" in (out / "report.md").read_text()
    base_mean = report["summary"]["bicubic"]["Mini"]["psnr"]
    assert base_mean == pytest.approx(np.mean([r["runs"]["bicubic"]["psnr"] for r in report["images"]]), abs=1e-12)
    gain_row = next(line for line in printed.splitlines() if "gain over bicubic" in line)
    assert f"{mean - base_mean:+.2f}" in gain_row
    csv_lines = (out / "per_image.csv").read_text().splitlines()
    assert csv_lines[0].startswith("set,image,runner,psnr_y") and len(csv_lines) == 7  # 3 images x (model, bicubic)
    assert (out / "summary.csv").read_text().count("\n") == 3


def test_paper_row_limit_and_denoise(bench_root, eval_weights, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bench_root / "benchmark" / "Mini", root / "benchmark" / "Set5")
    out = tmp_path / "out"
    rc = main(["eval", "--weights", str(eval_weights), "--task", "sr_x2", "--data", str(root), "--sets", "Set5",
               "--framework", "torch", "--limit", "2", "-o", str(out), "-q", "--protocol", "zoo"])
    assert rc == 0
    text = (out / "report.md").read_text()
    assert "| IPT (paper)" in text and "38.37" in text and "zoo" in text
    assert len(json.loads((out / "report.json").read_text())["images"]) == 2
    # denoising: clean HR + noise seeded per (seed, name), scale 1 (no shave)
    out_dn = tmp_path / "dn"
    rc = main(["eval", "--weights", str(eval_weights), "--task", "denoise_30", "--data", str(root), "--sets", "Set5",
               "--framework", "torch", "--limit", "1", "-o", str(out_dn), "-q", "--no-ssim"])
    assert rc == 0
    report = json.loads((out_dn / "report.json").read_text())
    assert report["images"][0]["output_size"] == report["images"][0]["input_size"]
    assert report["images"][0]["runs"]["torch"]["ssim"] is None


def test_interrupted_eval_resumes_and_writes_no_partial_report(bench_root, eval_weights, tmp_path, monkeypatch):
    from ipt_ms.eval.engine import Runner

    calls = []
    armed = [True]
    original = Runner.restore

    def interrupting(self, image, protocol, self_ensemble=False):
        calls.append(1)
        if armed[0] and len(calls) == 2:  # Ctrl-C while the second image runs
            armed[0] = False
            raise KeyboardInterrupt
        return original(self, image, protocol, self_ensemble)

    monkeypatch.setattr(Runner, "restore", interrupting)
    out = tmp_path / "out"
    assert _eval(eval_weights, bench_root, out) == 130
    assert not (out / "report.md").exists() and not (out / "report.json").exists()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2  # header + the one finished image

    calls.clear()
    assert _eval(eval_weights, bench_root, out) == 0
    assert len(calls) == 2  # only the two missing images ran
    resumed = json.loads((out / "report.json").read_text())

    # a cut-off last line (crash mid-write) is dropped and that image recomputed
    with open(out / "results.jsonl", "ab") as fh:
        fh.write(b'{"set": "Mini", "name": "cof')
    calls.clear()
    assert _eval(eval_weights, bench_root, out) == 0
    assert len(calls) == 0  # all three were complete before the damaged tail
    assert (out / "results.jsonl").read_text().endswith("}\n")

    monkeypatch.setattr(Runner, "restore", original)
    fresh = tmp_path / "fresh"
    assert _eval(eval_weights, bench_root, fresh) == 0
    clean = json.loads((fresh / "report.json").read_text())
    for a, b in zip(resumed["images"], clean["images"], strict=True):
        assert a["runs"]["torch"]["psnr"] == b["runs"]["torch"]["psnr"]


def test_changed_settings_are_refused_unless_restarted(bench_root, eval_weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(eval_weights, bench_root, out, "--limit", "1") == 0
    capsys.readouterr()
    assert _eval(eval_weights, bench_root, out, "--limit", "1", "--protocol", "paper") == 2
    err = capsys.readouterr().err.strip()
    assert "different settings (protocol)" in err and len(err.splitlines()) == 1
    assert _eval(eval_weights, bench_root, out, "--limit", "1", "--protocol", "paper", "--restart") == 0


def _run_bad(root, weights, tmp_path, capsys, *extra):
    out = tmp_path / "bad-out"
    rc = _eval(weights, root, out, *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written
    return err


def test_mismatched_hr_lr_sizes(bench_root, eval_weights, tmp_path, capsys):
    root = _copy_set(bench_root, tmp_path)
    lr = root / "benchmark" / "Mini" / "LR_bicubic" / "X2" / "chelseax2.png"
    Image.fromarray(read_image(lr)[:-3]).save(lr)
    err = _run_bad(root, eval_weights, tmp_path, capsys)
    assert str(lr) in err and "chelsea.png" in err


def test_missing_lr_scale_folder(bench_root, eval_weights, tmp_path, capsys):
    root = _copy_set(bench_root, tmp_path)
    shutil.rmtree(root / "benchmark" / "Mini" / "LR_bicubic" / "X2")
    err = _run_bad(root, eval_weights, tmp_path, capsys)
    assert str(Path("LR_bicubic") / "X2") in err


def test_images_of_different_modes(bench_root, eval_weights, tmp_path, capsys):
    root = _copy_set(bench_root, tmp_path)
    hr = root / "benchmark" / "Mini" / "HR" / "coffee.png"
    rgb = read_image(hr)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(hr)  # RGBA in an RGB set
    err = _run_bad(root, eval_weights, tmp_path, capsys)
    assert str(hr) in err and "8-bit RGBA" in err and "--allow-mixed-modes" in err
    assert _eval(eval_weights, root, tmp_path / "ok", "--allow-mixed-modes") == 0

    Image.fromarray(rgb).save(hr)
    lr = root / "benchmark" / "Mini" / "LR_bicubic" / "X2" / "coffeex2.png"
    Image.fromarray(read_image(lr)[..., 1]).save(lr)  # gray input for a colour ground truth
    err = _run_bad(root, eval_weights, tmp_path, capsys)
    assert str(lr) in err and "8-bit gray" in err


def test_gray_image_in_rgb_set_is_read_like_the_official_loader(bench_root, eval_weights, tmp_path, caplog):
    root = _copy_set(bench_root, tmp_path)
    set_dir = root / "benchmark" / "Mini"
    for path in (set_dir / "HR" / "chelsea.png", set_dir / "LR_bicubic" / "X2" / "chelseax2.png"):
        Image.fromarray(read_image(path)[..., 0]).save(path)
    assert _eval(eval_weights, root, tmp_path / "out", "--limit", "2") == 0
    assert "chelsea.png is 8-bit gray; read as 3 equal channels" in caplog.text


def test_corrupt_image_and_unknown_set(bench_root, eval_weights, tmp_path, capsys):
    root = _copy_set(bench_root, tmp_path)
    hr = root / "benchmark" / "Mini" / "HR" / "astronaut.png"
    hr.write_bytes(b"not a png")
    err = _run_bad(root, eval_weights, tmp_path, capsys)
    assert str(hr) in err
    err = _run_bad(bench_root, eval_weights, tmp_path, capsys, "--sets", "Nope")
    assert "Nope" in err
    missing = tmp_path / "missing.pt"
    out = tmp_path / "o"
    assert main(["eval", "--weights", str(missing), "--task", "sr_x2", "--data", str(bench_root), "-o", str(out),
                 "-q"]) == 2
    assert str(missing) in capsys.readouterr().err and not out.exists()


def test_single_task_file_without_task_name(bench_root, tmp_path, capsys):
    from ipt_ms.convert.weights import save_weights
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(1,))  # like the released IPT_dn30.pt: the file only says "scale 1"
    assert spec.task_names == ("restore_0",)
    weights = tmp_path / "dn.pt"
    save_weights(weights, seeded_state(spec, 1), spec)
    args = ["eval", "--weights", str(weights), "--data", str(bench_root), "--sets", "Mini", "--framework", "torch",
            "--limit", "1", "-q"]
    assert main(args + ["--task", "denoise_30", "-o", str(tmp_path / "a")]) == 0
    assert main(args + ["--task", "0", "-o", str(tmp_path / "b")]) == 2
    assert "--task denoise_30" in capsys.readouterr().err


def test_weights_digest_follows_content_not_file_bytes(eval_spec, eval_weights, tmp_path):
    from ipt_ms.convert.weights import convert_file, save_weights
    from ipt_ms.eval.engine import weights_digest
    from parity.seeded import seeded_state

    again = tmp_path / "again.pt"  # same seeded weights saved anew (torch.save adds a random id)
    save_weights(again, seeded_state(eval_spec, 7), eval_spec)
    ckpt = tmp_path / "same.ckpt"
    convert_file(eval_weights, ckpt)
    other = tmp_path / "other.pt"
    save_weights(other, seeded_state(eval_spec, 8), eval_spec)
    digests = [weights_digest(p) for p in (eval_weights, again, ckpt, other)]
    assert digests[0] == digests[1] == digests[2] != digests[3]
