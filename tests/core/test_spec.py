import pytest

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import parse_task
from tests.conftest import read_manifest


def test_parameter_counts_match_the_paper_models():
    assert IPTSpec.official("sr_x2").num_parameters() == 115_460_443
    assert IPTSpec.pretrain().num_parameters() == 118_892_394


@pytest.mark.parametrize("spec,manifest", [
    (IPTSpec.official("sr_x2"), "official_pt_keys_single_x2.tsv"),
    (IPTSpec.pretrain(), "official_pt_keys_pretrain_6task.tsv"),
])
def test_manifest_is_the_official_state_dict_in_order(spec, manifest):
    official = read_manifest(manifest)
    ours = spec.torch_state_shapes()
    assert list(ours) == list(official)
    assert ours == official


def test_upsampler_layout():
    assert IPTSpec.upsampler_factors(1) == []
    assert IPTSpec.upsampler_factors(2) == [2]
    assert IPTSpec.upsampler_factors(3) == [3]
    assert IPTSpec.upsampler_factors(4) == [2, 2]
    assert IPTSpec.upsampler_factors(8) == [2, 2, 2]


@pytest.mark.parametrize("kwargs,message", [
    (dict(scales=(5,)), "scale 5"),
    (dict(scales=(2,), task_names=("sr_x3",)), "implies scale 3"),
    (dict(scales=(2, 2), task_names=("sr_x2", "sr_x2"), num_queries=2), "repeat"),
    (dict(patch_size=50), "multiple of patch_dim"),
    (dict(num_heads=7), "divisible by num_heads"),
    (dict(scales=(2, 3), num_queries=1), "num_queries"),
    (dict(pos_every=True, no_pos=True), "exclude"),
    (dict(dropout_rate=1.5), "dropout_rate"),
    (dict(scales=(2,), task_names=("sr_x2", "sr_x3")), "task names for"),
])
def test_invalid_architectures_are_rejected(kwargs, message):
    with pytest.raises(IPTError, match=message):
        IPTSpec(**kwargs)


def test_task_lookup_by_name_and_index():
    spec = IPTSpec.pretrain()
    assert spec.task_index("denoise_50") == 4
    assert spec.task_index(2) == 2
    assert spec.task_index("5") == 5
    assert spec.scale_of("sr_x3") == 3
    with pytest.raises(IPTError, match="knows: 0=sr_x2, 1=sr_x3"):
        spec.task_index("sr_x8")
    with pytest.raises(IPTError, match="out of range"):
        spec.task_index(6)


def test_default_task_names():
    assert IPTSpec(scales=(2, 3, 4, 1, 1, 1), num_queries=6).task_names == IPTSpec.pretrain().task_names
    assert IPTSpec(scales=(4,)).task_names == ("sr_x4",)
    assert IPTSpec(scales=(1, 2), num_queries=2).task_names == ("restore_0", "sr_x2")


def test_parse_task():
    assert parse_task("denoise_30").sigma == 30.0
    assert parse_task("sr_x4").scale == 4
    with pytest.raises(IPTError, match="unknown task name"):
        parse_task("upscale")


def test_json_round_trip_and_unknown_keys():
    spec = IPTSpec.pretrain(num_heads=8, pos_every=True)
    assert IPTSpec.from_json(spec.to_json()) == spec
    with pytest.raises(IPTError, match="unknown IPT architecture option"):
        IPTSpec.from_dict({**spec.to_dict(), "depth": 3})


def test_stage_names_follow_the_architecture():
    spec = IPTSpec.pretrain()
    names = spec.stage_names("sr_x4")
    assert names[:4] == ["mean_shift", "head.conv", "head.resblock1", "head.resblock2"]
    assert names.count("body.linear_encoding") == 1
    assert sum(n.startswith("body.encoder.") for n in names) == 12
    assert sum(n.startswith("body.decoder.") for n in names) == 12
    assert names[-5:] == ["body.residual", "tail.upsample.0", "tail.upsample.1", "tail.conv", "output"]
    assert "tail.upsample.0" not in spec.stage_names("derain")
    assert "body.mlp_head" not in IPTSpec(no_mlp=True).stage_names(0)


def test_a_lone_unnamed_head_takes_the_requested_task_name():
    unnamed = IPTSpec(scales=(1,))  # how a released IPT_dn30.pt is inferred
    assert unnamed.task_names == ("restore_0",)
    assert unnamed.name_placeholder_task("denoise_30").task_names == ("denoise_30",)
    assert unnamed.name_placeholder_task("derain").task_index("derain") == 0
    assert unnamed.name_placeholder_task("sr_x2") == unnamed  # wrong scale: left to task_index to reject
    assert unnamed.name_placeholder_task(0) == unnamed
    two = IPTSpec(scales=(1, 1), num_queries=2)
    assert two.name_placeholder_task("derain") == two  # ambiguous: not guessed
    named = IPTSpec.official("denoise_50")
    assert named.name_placeholder_task("denoise_30") == named
