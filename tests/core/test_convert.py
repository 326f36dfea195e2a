"""Weight files: formats, inference of the architecture, wrappers, bad input."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ipt_ms.convert.infer import infer_spec
from ipt_ms.convert.weights import convert_file, load_weights, read_weight_file, save_weights
from ipt_ms.errors import IPTError, WeightsMismatchError
from ipt_ms.spec import IPTSpec
from tests.conftest import random_state, read_manifest


def _torch_save_bare(path, state):
    """Save like the official code: torch.save(model.state_dict()) with no extra metadata."""
    torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in state.items()), path)


@pytest.mark.parametrize("manifest,tasks,scales", [
    ("official_pt_keys_single_x2.tsv", ("sr_x2",), (2,)),
    ("official_pt_keys_pretrain_6task.tsv", ("sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain"),
     (2, 3, 4, 1, 1, 1)),
])
def test_infer_official_architectures(manifest, tasks, scales):
    spec = infer_spec(read_manifest(manifest))
    assert spec.task_names == tasks and spec.scales == scales
    assert (spec.n_feats, spec.patch_size, spec.patch_dim, spec.num_layers, spec.num_heads) == (64, 48, 3, 12, 12)
    assert spec.num_queries == len(tasks)
    assert spec.torch_state_shapes() == read_manifest(manifest)


@pytest.mark.parametrize("spec", [
    IPTSpec.tiny(scales=(3,), no_norm=True),
    IPTSpec.tiny(scales=(4, 1), num_queries=3, no_pos=True),
    IPTSpec.tiny(scales=(8,), n_feats=4, patch_dim=2, num_layers=3, patch_size=16),
    IPTSpec.tiny(scales=(2,), no_mlp=True),  # named tasks: a scale-1 head's name is not in the file
])
def test_infer_round_trips_options(spec):
    assert infer_spec(spec.torch_state_shapes(), num_heads=spec.num_heads) == spec


def test_single_scale_one_heads_need_names():
    spec = infer_spec(IPTSpec.tiny(scales=(1,), task_names=("derain",)).torch_state_shapes(), num_heads=2)
    assert spec.task_names == ("restore_0",)
    named = infer_spec(IPTSpec.tiny(scales=(1,)).torch_state_shapes(), num_heads=2, task_names=["denoise_50"])
    assert named.task_names == ("denoise_50",)


def test_official_checkpoint_saved_by_the_official_class_converts(tmp_path):
    """A bare torch.save(state_dict) with the official keys (IPT_sr2.pt layout) converts both ways."""
    official = read_manifest("official_pt_keys_single_x2.tsv")
    state = random_state(official, seed=5)
    src = tmp_path / "IPT_sr2.pt"
    _torch_save_bare(src, state)
    convert_file(src, tmp_path / "IPT_sr2.ckpt")
    convert_file(tmp_path / "IPT_sr2.ckpt", tmp_path / "back.pt")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert list(back) == list(state)
    for key, value in state.items():
        assert torch.equal(back[key], torch.from_numpy(value)), key
    # the official model class (our twin has its keys) loads the result strictly
    from parity.torch_ipt import TorchIPT

    TorchIPT(IPTSpec.official("sr_x2")).load_state_dict(back, strict=True)


@pytest.mark.parametrize("fmt", [".pt", ".pth", ".safetensors", ".ckpt"])
def test_every_format_round_trips_bit_exact_with_spec(tmp_path, tiny_spec, tiny_state, fmt):
    path = tmp_path / f"w{fmt}"
    save_weights(path, tiny_state, tiny_spec)
    spec, state = load_weights(path)
    assert spec == tiny_spec  # num_heads=2 and task names travel inside the file
    for key, value in tiny_state.items():
        np.testing.assert_array_equal(state[key], value)


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module.", "model.", "state_dict+module."])
def test_wrapped_and_prefixed_state_dicts(tmp_path, tiny_spec, tiny_state, wrap):
    tensors = {k: torch.from_numpy(v) for k, v in tiny_state.items()}
    if "module." in wrap or wrap == "model.":
        prefix = "module." if "module." in wrap else "model."
        tensors = {prefix + k: v for k, v in tensors.items()}
    obj = tensors
    if wrap.startswith("state_dict") or wrap == "model":
        obj = {wrap.split("+")[0]: tensors, "epoch": 7}
    torch.save(obj, tmp_path / "w.pt")
    spec, state = load_weights(tmp_path / "w.pt", num_heads=2, task_names=list(tiny_spec.task_names))
    assert spec == tiny_spec
    np.testing.assert_array_equal(state["head.0.0.weight"], tiny_state["head.0.0.weight"])


class _Payload:
    def __reduce__(self):
        return (print, ("this should never run",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"head.0.0.weight": torch.zeros(1), "x": _Payload()}, path)
    with pytest.raises(IPTError, match="refused to load .*weights_only"):
        read_weight_file(path)


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(IPTError, match="evil.pth"):
        read_weight_file(path)


@pytest.mark.parametrize("name,content", [
    ("corrupt.pt", b"not a checkpoint at all"),
    ("corrupt.ckpt", b"\x00\x01garbage"),
    ("corrupt.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}"),
])
def test_corrupt_files_name_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IPTError, match=name):
        read_weight_file(path)


def test_truncated_checkpoint(tmp_path, tiny_pt):
    path = tmp_path / "truncated.pt"
    path.write_bytes(tiny_pt.read_bytes()[: tiny_pt.stat().st_size // 2])
    with pytest.raises(IPTError, match="truncated.pt"):
        load_weights(path)


def test_not_ipt(tmp_path):
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "resnet.pt")
    with pytest.raises(IPTError, match="not an IPT checkpoint"):
        load_weights(tmp_path / "resnet.pt")


def test_wrong_shapes_write_nothing(tmp_path, tiny_spec, tiny_state):
    state = dict(tiny_state)
    state["body.encoder.layers.0.linear1.weight"] = np.zeros((5, 72), np.float32)
    src = tmp_path / "bad.pt"
    _torch_save_bare(src, state)
    dst = tmp_path / "out.ckpt"
    with pytest.raises(WeightsMismatchError, match="linear1.weight"):
        convert_file(src, dst, num_heads=2)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.pt"]  # no temporary left behind


def test_failed_write_keeps_the_existing_file(tmp_path, tiny_spec, tiny_state, monkeypatch):
    dst = tmp_path / "model.ckpt"
    save_weights(dst, tiny_state, tiny_spec)
    before = dst.read_bytes()
    import mindspore as ms

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ms, "save_checkpoint", broken_save)
    with pytest.raises(IPTError, match="cannot write .*model.ckpt"):  # an OSError while writing: one line
        save_weights(dst, tiny_state, tiny_spec, overwrite=True)
    assert dst.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


def test_unknown_extension(tmp_path, tiny_pt):
    with pytest.raises(IPTError, match="unknown weights extension"):
        convert_file(tiny_pt, tmp_path / "out.h5")


def test_content_decides_over_a_misleading_extension(tmp_path, tiny_pt, tiny_ckpt):
    (tmp_path / "a.ckpt").write_bytes(tiny_pt.read_bytes())
    with pytest.raises(IPTError, match="a.ckpt' is named .ckpt but holds a PyTorch .*rename it to .pt"):
        read_weight_file(tmp_path / "a.ckpt")
    (tmp_path / "b.pt").write_bytes(tiny_ckpt.read_bytes())
    with pytest.raises(IPTError, match="rename it to .ckpt"):
        read_weight_file(tmp_path / "b.pt")


def test_safetensors_header_length_starting_like_a_pickle(tmp_path, tiny_spec, tiny_state):
    """A header whose length's low byte is 0x80 must not be taken for a pickle."""
    import json
    import struct

    value = tiny_state["head.0.0.bias"]
    header = {"head.0.0.bias": {"dtype": "F32", "shape": list(value.shape), "data_offsets": [0, value.nbytes]}}
    text = json.dumps(header).encode()
    text += b" " * (0x180 - len(text))
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + value.tobytes())
    weights = read_weight_file(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(weights.arrays["head.0.0.bias"], value)
