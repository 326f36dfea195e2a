"""The no-model baseline in eval tables, and default output folders that do not collide."""

from __future__ import annotations

import json
import shutil

import pytest

from ipt_ms.cli import main
from ipt_ms.metrics import psnr, ssim


def test_denoise_baseline_is_the_noisy_input_scored_like_the_model(bench_root, eval_weights, tmp_path, capsys):
    from ipt_ms.eval.sets import load_sets
    from ipt_ms.tasks import parse_task

    out = tmp_path / "dn"
    assert main(["eval", "--weights", str(eval_weights), "--task", "denoise_30", "--data", str(bench_root),
                 "--sets", "Mini", "--framework", "torch", "--limit", "2", "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "| Input, noisy (no model)" in printed and "|   gain over noisy input" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"] == {"label": "input", "method": "Input, noisy (no model)"}
    (mini,) = load_sets(str(bench_root), ["Mini"], parse_task("denoise_30"), seed=0, clip=True, lr="files", limit=2)
    for index, rec in enumerate(report["images"]):
        pair = mini.dataset[index]  # the same seeded noise the model saw
        assert rec["runs"]["input"]["psnr"] == pytest.approx(psnr(pair.lq, pair.gt, 1), abs=1e-9)
        assert rec["runs"]["input"]["ssim"] == pytest.approx(ssim(pair.lq, pair.gt, 1), abs=1e-9)
    md = (out / "report.md").read_text()
    assert "- baseline: Input, noisy (no model), scored with the same metric code" in md
    # a random tiny model is far worse than doing nothing: the report says so in words
    assert "is below the noisy input baseline on Mini" in printed and "**Note:**" in md


def test_two_runs_of_model_ckpt_get_their_own_folders_and_rows(bench_root, eval_weights, eval_spec, tmp_path,
                                                               monkeypatch, capsys):
    from ipt_ms.convert.weights import save_weights
    from parity.seeded import seeded_state

    (tmp_path / "run_a").mkdir()
    (tmp_path / "run_b").mkdir()
    shutil.copy(eval_weights, tmp_path / "run_a" / "model.pt")
    save_weights(tmp_path / "run_b" / "model.pt", seeded_state(eval_spec, 8), eval_spec)
    monkeypatch.chdir(tmp_path)
    names = []
    for run in ("run_a", "run_b"):
        assert main(["eval", "--weights", f"{run}/model.pt", "--task", "sr_x2", "--data", str(bench_root),
                     "--sets", "Mini", "--framework", "torch", "--limit", "1", "-q"]) == 0
        printed = capsys.readouterr().out
        # the run folder names a generic model.pt (issue 18: rows and folders all read "model")
        names.append(next(line.split("|")[1].strip() for line in printed.splitlines()
                          if f"IPT {run}/model.pt (" in line))
    folders = sorted(p.name for p in (tmp_path / "eval-results").iterdir())
    assert [f.split("-")[0] for f in folders] == ["run_a", "run_b"]
    assert all(f.split("-")[1] == "model" and f.endswith("-sr_x2-torch-official") for f in folders)
    assert names[0] != names[1]
    for folder, name in zip(folders, names):
        assert folder.split("-")[2] in name  # the folder's digest is the one the table shows
        title = (tmp_path / "eval-results" / folder / "report.md").read_text().splitlines()[0]
        run = folder.split("-")[0]
        assert title.startswith(f"# IPT evaluation: sr_x2, {run}/model.pt (") and folder.split("-")[2] in title
