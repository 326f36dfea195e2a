"""The key map: every official key maps to exactly one MindSpore parameter and back."""

import numpy as np
import pytest

from ipt_ms.convert.keymap import (
    KEY_MAP,
    TORCH_ONLY_BUFFERS,
    mindspore_key,
    mindspore_shapes,
    mindspore_to_torch,
    torch_key,
    torch_to_mindspore,
)
from ipt_ms.errors import WeightsMismatchError
from ipt_ms.models import build_ipt
from ipt_ms.spec import IPTSpec
from tests.conftest import random_state, read_manifest

VARIANTS = [
    IPTSpec.tiny(),
    IPTSpec.tiny(scales=(2, 3, 4, 1, 1, 1), num_queries=6),
    IPTSpec.tiny(no_norm=True),
    IPTSpec.tiny(no_mlp=True),
    IPTSpec.tiny(no_pos=True),
    IPTSpec.tiny(pos_every=True),
    IPTSpec.tiny(scales=(8,), n_feats=4, patch_dim=2, num_layers=2),
]


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: s.to_json()[:60])
def test_mindspore_network_parameters_are_the_mapped_manifest(spec):
    net = build_ipt(spec)
    params = {p.name: tuple(p.shape) for p in net.get_parameters()}
    assert params == mindspore_shapes(spec)
    assert list(params) == list(mindspore_shapes(spec))


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: s.to_json()[:60])
def test_torch_twin_state_dict_is_the_manifest(spec):
    from parity.torch_ipt import TorchIPT

    state = TorchIPT(spec).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == spec.torch_state_shapes()
    assert list(state) == list(spec.torch_state_shapes())


@pytest.mark.parametrize("manifest", ["official_pt_keys_single_x2.tsv", "official_pt_keys_pretrain_6task.tsv"])
def test_every_official_key_round_trips(manifest):
    official = read_manifest(manifest)
    ms_names = [mindspore_key(k) for k in official]
    kept = [n for n in ms_names if n is not None]
    assert len(kept) == len(set(kept)) == len(official) - 1  # injective; only position_ids dropped
    for key in official:
        if key not in TORCH_ONLY_BUFFERS:
            assert torch_key(mindspore_key(key)) == key


def test_each_rename_rule_is_used():
    spec = IPTSpec.pretrain()
    renamed = {k for k in spec.torch_state_shapes() if mindspore_key(k) not in (k, None)}
    for rule in KEY_MAP:
        assert any(k.endswith("." + rule.torch_leaf) and mindspore_key(k).endswith("." + rule.mindspore_leaf)
                   for k in renamed), rule


def test_array_round_trip_is_bit_exact():
    spec = IPTSpec.tiny(scales=(2, 1), num_queries=2)
    state = random_state(spec.torch_state_shapes(), seed=1)
    back = mindspore_to_torch(torch_to_mindspore(state, spec), spec)
    assert list(back) == list(state)
    for key in state:
        assert back[key].dtype == state[key].dtype
        np.testing.assert_array_equal(back[key], state[key])


def test_mismatch_lists_missing_unexpected_and_misshaped_keys():
    spec = IPTSpec.tiny()
    state = random_state(spec.torch_state_shapes())
    del state["body.linear_encoding.bias"]
    state["body.extra.weight"] = np.zeros(3, np.float32)
    state["head.0.0.weight"] = np.zeros((16, 3, 5, 5), np.float32)
    with pytest.raises(WeightsMismatchError) as info:
        torch_to_mindspore(state, spec)
    err = info.value
    assert err.missing == ["body.linear_encoding.bias"]
    assert err.unexpected == ["body.extra.weight"]
    assert err.mismatched == [("head.0.0.weight", (16, 3, 3, 3), (16, 3, 5, 5))]
    message = str(err)
    assert "missing 1" in message and "unexpected 1" in message and "head.0.0.weight" in message


def test_position_ids_may_be_absent():
    spec = IPTSpec.tiny()
    state = random_state(spec.torch_state_shapes())
    del state["body.position_encoding.position_ids"]
    back = mindspore_to_torch(torch_to_mindspore(state, spec), spec)
    np.testing.assert_array_equal(back["body.position_encoding.position_ids"], np.arange(64)[None])
