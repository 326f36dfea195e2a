"""Numeric command-line options out of range (issue items 11 and 15): refused when parsed,
before any file is read or written, in one line naming the option (exit 2)."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

# (command line after `ipt-ms`, the option the error must name)
CASES = {
    "parity_stage_tol_negative": (["parity", "W.pt", "--stage-tol", "-1"], "--stage-tol"),
    "parity_stage_tol_nan": (["parity", "W.pt", "--stage-tol", "nan"], "--stage-tol"),
    "parity_output_tol_inf": (["parity", "W.pt", "--output-tol", "inf"], "--output-tol"),
    "parity_floor_factor_negative": (["parity", "W.pt", "--floor-factor", "-4"], "--floor-factor"),
    "parity_seed_2_64": (["parity", "W.pt", "--seed", str(2**64)], "--seed"),
    "make_weights_seed_2_64": (["make-weights", "-o", "m.pt", "--seed", str(2**64)], "--seed"),
    "make_weights_seed_2_32": (["make-weights", "-o", "m.pt", "--seed", str(2**32)], "--seed"),
    "make_weights_seed_negative": (["make-weights", "-o", "m.pt", "--seed", "-1"], "--seed"),
    "make_weights_layers_zero": (["make-weights", "-o", "m.pt", "--num-layers", "0"], "--num-layers"),
    "synth_seed_negative": (["synth", "src", "out", "--seed", "-3"], "--seed"),
    "restore_batch_zero": (["restore", "--weights", "W.pt", "x.png", "-o", "out", "--batch-size", "0"],
                           "--batch-size"),
    "restore_heads_zero": (["restore", "--weights", "W.pt", "x.png", "-o", "out", "--num-heads", "0"],
                           "--num-heads"),
    "eval_limit_zero": (["eval", "--weights", "W.pt", "--task", "sr_x2", "--data", "d", "--limit", "0"], "--limit"),
    "eval_shave_negative": (["eval", "--weights", "W.pt", "--task", "sr_x2", "--data", "d", "--shave", "-2"],
                            "--shave"),
    "eval_seed_text": (["eval", "--weights", "W.pt", "--task", "sr_x2", "--data", "d", "--seed", "one"], "--seed"),
    "parity_bench_tol_nan": (["parity-bench", "W.pt", "--task", "sr_x2", "--data", "d", "--tol", "nan"], "--tol"),
    "export_opset_zero": (["export", "--weights", "W.pt", "-o", "e.onnx", "--opset", "0"], "--opset"),
    "train_max_steps_negative": (["train", "--config", "c.yaml", "--max-steps", "-5"], "--max-steps"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_out_of_range_numeric_option(tmp_path, case):
    args, option = CASES[case]
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli(*args, cwd=tmp_path)
    line = assert_one_line_error(proc, option)
    assert "usage:" not in line
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_missing_and_unknown_arguments_are_one_line_too(tmp_path):
    cases = ((["restore", "x.png", "-o", "out"], "--weights --model"), (["no-such-command"], "no-such-command"),
             (["convert", "a.pt", "b.ckpt", "--bogus"], "--bogus"))
    for args, named in cases:
        assert_one_line_error(run_cli(*args, cwd=tmp_path), named)
