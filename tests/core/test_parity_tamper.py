"""The layer-by-layer parity rule catches each kind of mistake at the stage that makes it.

Every case tampers with the MindSpore side only (what a wrong conversion does) and must fail
at the first stage that reads the tampered tensor (`parity.tamper`). The LayerNorms are moved
off the official initialisation's 1 / 0 first, as in any trained checkpoint, so that scaling
or swapping them changes something.
"""

import numpy as np
import pytest

from ipt_ms.spec import IPTSpec
from parity.seeded import seeded_state, with_trained_layernorms
from parity.tamper import KINDS, first_stage, sweep, tamper_cases


@pytest.fixture(scope="module")
def tiny_case():
    spec = IPTSpec.tiny(n_feats=8)  # the figures of docs/parity.md were measured at 8 features
    return spec, with_trained_layernorms(seeded_state(spec, 4), seed=4)


def _missed(rows):
    return [(r.tamper, r.task, r.expected_stage, r.failed_at, round(r.ratio, 3)) for r in rows if not r.caught]


@pytest.mark.parametrize("kind", KINDS)
def test_every_tensor_of_a_tiny_model_tampered_is_caught_where_it_is_read(kind, tiny_case):
    spec, state = tiny_case
    cases = list(tamper_cases(spec, state, (kind,)))
    tensors = [k for k in state if not k.endswith("position_ids")]
    expected = {"scale": len(tensors), "layernorm_swap": 5, "missing_bias": 22, "key_swap": 40}[kind]
    assert len(cases) >= expected  # scale: every tensor; layernorm_swap: every LayerNorm
    rows = sweep(spec, state, cases)
    assert rows and not _missed(rows), _missed(rows)


def test_tampering_is_caught_in_pynative_mode_too(tiny_case, pynative):
    """PyNative runs other kernels' schedules; every 6th case of each kind (PyNative is slow)."""
    spec, state = tiny_case
    cases = [c for kind in KINDS for c in list(tamper_cases(spec, state, (kind,)))[::6]]
    rows = sweep(spec, state, cases)
    assert len(rows) > 20 and not _missed(rows), _missed(rows)


def test_untampered_weights_pass_every_stage_and_photo(tiny_case, photo_png):
    from ipt_ms.inference import build_model
    from parity.compare import judge_mindspore, make_input, torch_reference
    from parity.torch_runner import build_torch_model

    spec, state = tiny_case
    net, model = build_model(spec, state), build_torch_model(spec, state)
    for image in (None, str(photo_png)):
        x, _ = make_input(spec, image)
        for task in range(spec.num_tasks):
            diffs = judge_mindspore(net, torch_reference(model, x, task))
            assert all(d.ok and d.is_local for d in diffs), [(d.name, d.local_ratio) for d in diffs if not d.ok]


def test_first_stage_names_the_stage_that_reads_each_key():
    spec = IPTSpec.tiny(scales=(2, 4, 1), num_queries=3)
    assert first_stage(spec, "tail.1.0.2.weight", 1) == "tail.upsample.1"
    assert first_stage(spec, "tail.1.0.2.weight", 0) is None  # another task's tail
    assert first_stage(spec, "head.2.1.body.2.bias", 2) == "head.resblock1"
    assert first_stage(spec, "body.decoder.layers.0.norm3.weight", 0) == "body.decoder.0"
    assert first_stage(spec, "body.query_embed.weight", 2) == "body.decoder.0"
    state = seeded_state(spec, 0)
    for task in range(spec.num_tasks):
        read = {first_stage(spec, k, task) for k in state if not k.endswith("position_ids")} - {None}
        assert read <= set(spec.stage_names(task))


@pytest.mark.slow
def test_full_size_tampering_is_caught_at_depth(photo_png):
    """The full-size 6-task model on a photo: mistakes deep in the decoder, where rounding
    inherited from earlier stages is largest, fail at their own stage."""
    spec = IPTSpec.pretrain()
    state = with_trained_layernorms(seeded_state(spec, 0))
    wanted = {
        ("scale", ("body.decoder.layers.11.linear2.weight",)),
        ("scale", ("body.decoder.layers.9.linear1.bias",)),
        ("layernorm_swap", ("body.decoder.layers.11.norm3.weight", "body.decoder.layers.11.norm3.bias")),
        ("missing_bias", ("body.decoder.layers.10.linear2.bias",)),
        ("key_swap", ("body.decoder.layers.10.multihead_attn.in_proj_weight",
                      "body.decoder.layers.11.self_attn.in_proj_weight")),
        ("scale", ("tail.2.0.2.weight",)),
    }
    cases = [c for c in tamper_cases(spec, state) if (c.kind, c.keys) in wanted]
    assert len(cases) == len(wanted)
    # the body on sr_x4 only (every task reads it the same way), to keep the run short
    rows = sweep(spec, state, cases, image=str(photo_png), tasks=[2])
    assert len(rows) == len(wanted) and not _missed(rows), _missed(rows)
    assert min(r.ratio for r in rows) > 2, [(r.tamper, r.ratio) for r in rows]


def test_channel_offset_sees_a_constant_shift_that_max_error_cannot():
    from parity.diff import _rel, channel_offset

    rng = np.random.default_rng(0)
    exact = rng.normal(0, 10, (256, 1, 64))
    noisy = exact + rng.normal(0, 1e-5, exact.shape)  # rounding-like, random signs
    shifted = exact + np.full(64, 2e-5)  # one channel-wise constant, below the noise's largest
    assert _rel(shifted, exact) < _rel(noisy, exact)
    assert channel_offset(shifted, exact) > 5 * channel_offset(noisy, exact)
