"""Hostile weight files against every command that reads weights, as real `ipt-ms` subprocesses.

Each crafted file must give exit code 2, one stderr line naming the file (and the key when
one is at fault), no traceback, no framework log lines, and no new or changed files. The
files are crafted here: NaN/inf tensors, metadata asking for 1e8 layers, a zero-stride
tensor that would need 4 TB, forged .ckpt sizes, empty/truncated/renamed files, a
directory, /dev/zero, mixed model-zoo and official keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ipt_ms.spec import IPTSpec
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

SPEC = IPTSpec.tiny()  # sr_x2 + denoise_30, 16 features, 1+1 layers, 2 heads


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def forged_ckpt(tag: str, dims: list[int], content: bytes) -> bytes:
    """A MindSpore Checkpoint protobuf with one entry whose dims its content does not back."""
    tensor = b"".join(_varint(1 << 3) + _varint(d) for d in dims) + _field(2, b"Float32") + _field(3, content)
    return _field(1, _field(1, tag.encode()) + _field(2, tensor))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> path of every crafted file, plus a photo and an eval data folder."""
    import torch
    from PIL import Image
    from safetensors.numpy import save_file
    from skimage import data

    from ipt_ms.convert.keymap import torch_to_mindspore
    from ipt_ms.convert.weights import save_weights, write_ms_checkpoint, zoo_state
    from parity.seeded import seeded_state

    root = tmp_path_factory.mktemp("hostile_weights")
    state = seeded_state(SPEC, seed=1)
    out = {}

    def with_value(key, index, value):
        changed = {k: v.copy() for k, v in state.items()}
        changed[key].flat[index] = value
        return changed

    out["nan.ckpt"] = root / "nan.ckpt"
    save_weights(out["nan.ckpt"], with_value("body.encoder.layers.0.linear1.weight", 5, np.nan), SPEC)
    out["inf.pt"] = root / "inf.pt"
    save_weights(out["inf.pt"], with_value("head.0.0.bias", 0, np.inf), SPEC)
    out["nan_zoo.ckpt"] = root / "nan_zoo.ckpt"
    nan_attn = with_value("body.decoder.layers.0.multihead_attn.in_proj_weight", 3, np.nan)
    write_ms_checkpoint(out["nan_zoo.ckpt"], zoo_state(nan_attn, SPEC, hub=True), {})

    official = {k: np.ascontiguousarray(v) for k, v in state.items()}
    for name, layers in (("huge.safetensors", 100_000_000), ("lying.safetensors", 2)):
        out[name] = root / name
        save_file(official, str(out[name]), metadata={"ipt_spec": json.dumps({**SPEC.to_dict(), "num_layers": layers})})
    out["badspec.ckpt"] = root / "badspec.ckpt"
    write_ms_checkpoint(out["badspec.ckpt"], torch_to_mindspore(state, SPEC), {"ipt_spec": "{not json"})

    out["zerostride.pt"] = root / "zerostride.pt"
    torch.save({"head.0.0.weight": torch.zeros(1).expand(1_000_000, 1_000_000)}, out["zerostride.pt"])
    assert out["zerostride.pt"].stat().st_size < 4096
    out["forged.ckpt"] = root / "forged.ckpt"
    out["forged.ckpt"].write_bytes(forged_ckpt("head.0.0.weight", [100_000, 100_000, 100_000], b"\0\0\0\0"))

    good = root / "good.ckpt"
    save_weights(good, state, SPEC)
    out["truncated.ckpt"] = root / "truncated.ckpt"
    out["truncated.ckpt"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["renamed.ckpt"] = root / "renamed.ckpt"  # a torch.save file with the wrong extension
    save_weights(root / "real.pt", state, SPEC)
    out["renamed.ckpt"].write_bytes((root / "real.pt").read_bytes())
    (root / "real.pt").unlink()
    good.unlink()
    for name in ("empty.ckpt", "empty.pt"):
        out[name] = root / name
        out[name].write_bytes(b"")
    out["dir.ckpt"] = root / "dir.ckpt"
    out["dir.ckpt"].mkdir()
    out["/dev/zero"] = Path("/dev/zero")

    zoo = zoo_state(state, SPEC)
    zoo["body.encoder.layers.0.self_attn.in_proj_weight"] = zoo["body.encoder.layers.0.self_attn.in_proj_layer"]
    out["mixed.ckpt"] = root / "mixed.ckpt"
    write_ms_checkpoint(out["mixed.ckpt"], zoo, {})

    inputs = tmp_path_factory.mktemp("inputs")
    out["photo"] = inputs / "photo.png"
    Image.fromarray(data.astronaut()[100:150, 150:210]).save(out["photo"])
    (inputs / "data" / "Mini" / "HR").mkdir(parents=True)
    Image.fromarray(data.coffee()[100:148, 150:198]).save(inputs / "data" / "Mini" / "HR" / "coffee.png")
    out["data"] = inputs / "data"
    return out


COMMANDS = {
    "info": lambda w, f, o: ["info", w],
    "convert": lambda w, f, o: ["convert", w, o / "out.pt"],
    "restore": lambda w, f, o: ["restore", "--weights", w, f["photo"], "-o", o / "restored", "-q"],
    "parity": lambda w, f, o: ["parity", w, "--no-fp64"],
    "export": lambda w, f, o: ["export", "--weights", w, "-o", o / "model.onnx"],
    "eval": lambda w, f, o: ["eval", "--weights", w, "--task", "sr_x2", "--data", f["data"], "--sets", "Mini",
                             "--lr", "generate", "-o", o / "eval", "-q"],
    "parity-bench": lambda w, f, o: ["parity-bench", w, "--task", "sr_x2", "--data", f["data"], "--sets", "Mini",
                                     "--lr", "generate", "-o", o / "pb", "-q"],
}
ALL = tuple(COMMANDS)
CHEAP = ("info", "convert", "restore", "export")  # torch-free where the file is a .ckpt

#: file -> (what the error line must name besides the file, commands it is run against)
CASES = {
    "nan.ckpt": (["body.encoder.layers.0.linear1.weight", "NaN"], ALL),
    "inf.pt": (["head.0.0.bias", "inf"], ("info", "convert", "restore", "parity")),
    "nan_zoo.ckpt": (["body.decoder.layers.0.multihead_attn.in_proj_layer", "NaN"], ALL),
    "huge.safetensors": (["num_layers", "1024"], ("info", "convert", "restore", "export")),
    "lying.safetensors": (["num_layers=2", "tensors hold 1"], ("info", "convert", "eval")),
    "badspec.ckpt": (["ipt_spec"], CHEAP),
    "zerostride.pt": (["head.0.0.weight", "strides"], ("info", "convert", "restore", "parity")),
    "forged.ckpt": (["head.0.0.weight", "bytes"], ALL),
    "truncated.ckpt": (["not a readable MindSpore checkpoint"], CHEAP),
    "renamed.ckpt": (["rename it to .pt"], CHEAP),
    "empty.ckpt": (["empty"], ALL),
    "empty.pt": (["empty"], ("info", "parity")),
    "dir.ckpt": (["directory"], ALL),
    "/dev/zero": (["not a regular file"], ("info", "convert", "restore", "eval")),
    "mixed.ckpt": (["mixes key layouts", "in_proj_layer", "in_proj_weight"], ALL),
}


@pytest.mark.parametrize("case,command", [(c, cmd) for c, (_, cmds) in CASES.items() for cmd in cmds])
def test_bad_weights_one_line_no_output(tmp_path, files, case, command):
    weights = files[case]
    fragments, _ = CASES[case]
    watched = [tmp_path, files["photo"].parent] + ([weights.parent] if case != "/dev/zero" else [])
    before = Snapshot.take(*watched)
    proc = run_cli(*COMMANDS[command](weights, files, tmp_path), cwd=tmp_path, timeout=120)
    line = assert_one_line_error(proc, str(weights), *fragments)
    assert "[ERROR]" not in proc.stderr and "WARNING" not in proc.stderr, line
    before.assert_same(Snapshot.take(*watched))


def test_finetune_init_refuses_nan_weights(tmp_path, files):
    config = tmp_path / "ft.yaml"
    config.write_text("kind: finetune\nmodel: {tasks: [sr_x2], n_feats: 8, patch_size: 24, num_heads: 2, "
                      "num_layers: 1}\nloss: {contrastive: none}\ndata: {batch_size: 1, num_workers: 0}\n"
                      "schedule: {epochs: 1}\n"
                      "output: {progress: false, plot: false}\n")
    before = Snapshot.take(files["nan.ckpt"].parent)
    proc = run_cli("finetune", "--config", config, "--init", files["nan.ckpt"], "--data", files["data"] / "Mini" / "HR",
                   "-o", tmp_path / "run", cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, str(files["nan.ckpt"]), "linear1.weight", "not finite")
    before.assert_same(Snapshot.take(files["nan.ckpt"].parent))
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file()] if (tmp_path / "run").exists() else True


def test_weights_given_to_the_onnx_framework(tmp_path, files, tiny_ckpt):
    before = Snapshot.take(tmp_path)
    proc = run_cli("restore", "--weights", tiny_ckpt, "--framework", "onnx", files["photo"], "-o", tmp_path / "r",
                   cwd=tmp_path)
    assert_one_line_error(proc, str(tiny_ckpt), "weights file, not an ONNX model", "--framework mindspore")
    before.assert_same(Snapshot.take(tmp_path))


def test_info_describes_training_checkpoints(tmp_path):
    """`info` on checkpoints/step_*.ckpt: the run's step, epoch and tasks; restore can use it too."""
    from ipt_ms.train.loop import train
    from tests.train.helpers import ArraySource, tiny_config

    cfg = tiny_config(tmp_path / "run", train={"max_steps": 2})
    train(cfg, source_factory=lambda world, rank: ArraySource(), quiet=True)
    ckpt = tmp_path / "run" / "checkpoints" / "step_000000002.ckpt"
    before = Snapshot.take(ckpt)
    proc = run_cli("info", ckpt, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ipt-ms training checkpoint: run pretrain, global_step 2, epoch 0" in proc.stdout
    assert "tasks: denoise_30 (x1)" in proc.stdout and "optimizer/loss-scale entries not used" in proc.stdout
    assert proc.stderr.strip() == ""
    proc = run_cli("convert", ckpt, tmp_path / "from_checkpoint.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    before.assert_same(Snapshot.take(ckpt))


def test_dev_zero_is_not_read(tmp_path):
    """The reader must not start consuming an endless device (it would never return)."""
    proc = run_cli("info", os.devnull, cwd=tmp_path, timeout=60)
    assert_one_line_error(proc, os.devnull, "not a regular file")
