"""MindSpore model-zoo / mindediting checkpoints: every variant reads to the official arrays, and back.

Zoo files are built here the way the zoo's code writes them (`mindspore.save_checkpoint` of
named parameters), with the names taken from the manifests in tests/fixtures, and
independently of the library's key map. The zoo's 6-task head order is restated here too:
zoo head j holds our task `OURS_FOR_ZOO_HEAD[j]` (x2, x3, x4, derain, sigma 30, sigma 50).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ipt_ms.convert.keymap import (
    ZOO_ABSENT,
    ZOO_HUB_KEY_MAP,
    ZOO_KEY_MAP,
    mean_shift_arrays,
    official_key_from_zoo,
    zoo_key,
)
from ipt_ms.convert.ms_checkpoint import read_ckpt
from ipt_ms.convert.weights import convert_file, load_weights, read_weight_file, save_weights
from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import PRETRAIN_TASKS
from tests.conftest import FIXTURES, random_state, read_manifest

OURS_FOR_ZOO_HEAD = [0, 1, 2, 5, 3, 4]
ZOO_TRAINER_SCALARS = {"beta1_power": np.array([0.9], np.float32), "beta2_power": np.array([0.999], np.float32),
                       "learning_rate": np.array(1e-4, np.float32), "global_step": np.array([1234], np.int32),
                       "scale_sense": np.array(65536.0, np.float32), "loss_scale": np.array([1.0], np.float32),
                       "current_iterator_step": np.array(7, np.int32),
                       "last_overflow_iterator_step": np.array(3, np.int32)}


def zoo_manifest(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = (FIXTURES / name).read_text().splitlines()[1:]
    return [(z, tuple(int(d) for d in s.split("x")), o) for z, s, _, o, _ in (r.split("\t") for r in rows)]


#: official key -> zoo-code key, as the manifests list them (tiny models use a subset)
NAMES = {o: z for manifest in ("zoo_ms_keys_pretrain_6task.tsv", "zoo_ms_keys_single_task.tsv")
         for z, _, o in zoo_manifest(manifest) if z != "-"}


def zoo_entries(state: dict[str, np.ndarray], *, six_task_order: bool, variant: str = "zoo") -> dict:
    """A zoo file's entries for official-keyed `state`, written as the zoo would (independent of ipt_ms)."""
    heads = sorted({int(k.split(".")[1]) for k in state if k.startswith("head.")})
    source = OURS_FOR_ZOO_HEAD if six_task_order else heads
    out = {}
    for key, value in state.items():
        if key in ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias") or "position_ids" in key:
            continue
        m = re.match(r"^(head|tail)\.(\d+)\.(.*)$", key)
        if m:
            value = state[f"{m[1]}.{source[int(m[2])]}.{m[3]}"]
        elif key == "body.query_embed.weight" and six_task_order:
            value = state[key][source]
        name = NAMES[key]
        if variant == "zoo-hub":
            name = name.replace(".layernorm.", ".")
        out[name] = value
    if variant == "zoo-trainer":
        rng = np.random.default_rng(9)
        net = {"model." + k: v for k, v in out.items()}
        moments = {f"moment{i}.{k}": rng.standard_normal(v.shape).astype(np.float32)
                   for i in (1, 2) for k, v in net.items()}
        out = {**net, **moments, **ZOO_TRAINER_SCALARS}
    return out


def save_like_the_zoo(path, entries: dict) -> None:
    import mindspore as ms

    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in entries.items()], str(path))


def standard_state(spec: IPTSpec, seed: int) -> dict[str, np.ndarray]:
    state = random_state(spec.torch_state_shapes(), seed=seed)
    state.update(mean_shift_arrays(spec))
    return state


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ------------------------------------------------------------------------------- key map
@pytest.mark.parametrize("manifest,official", [
    ("zoo_ms_keys_pretrain_6task.tsv", "official_pt_keys_pretrain_6task.tsv"),
    ("zoo_ms_keys_single_task.tsv", "official_pt_keys_single_x2.tsv"),
])
@pytest.mark.parametrize("hub", [False, True], ids=["zoo", "hub"])
def test_zoo_manifests_map_onto_the_official_manifests(manifest, official, hub):
    rows = zoo_manifest(manifest)
    want = read_manifest(official)
    mapped = {}
    for zoo, shape, off in rows:
        if zoo == "-":
            assert off in ZOO_ABSENT and zoo_key(off, hub) is None
            continue
        name = zoo.replace(".layernorm.", ".") if hub else zoo
        assert official_key_from_zoo(name, hub) == off
        assert zoo_key(off, hub) == name
        mapped[off] = shape
    assert len(set(mapped)) == len(mapped)  # every key used exactly once
    assert mapped == {k: s for k, s in want.items() if k not in ZOO_ABSENT}


def test_every_zoo_rule_is_used():
    keys = [z for m in ("zoo_ms_keys_pretrain_6task.tsv", "zoo_ms_keys_single_task.tsv")
            for z, _, _ in zoo_manifest(m) if z != "-"]
    for table, hub in ((ZOO_KEY_MAP, False), (ZOO_HUB_KEY_MAP, True)):
        names = [k.replace(".layernorm.", ".") if hub else k for k in keys]
        for row in table:
            assert any(row.zoo.match(k) is not None for k in names), row.why


def test_mindediting_rename_turns_hub_names_into_zoo_code_names():
    """mindediting's `change_dict_name` rewrites every '.gamma'/'.beta' to '.layernorm.gamma'/'.beta' before its
    strict load, so it needs Hub names; zoo-code names would come out with '.layernorm.layernorm.'."""
    spec = IPTSpec.official("sr_x2")
    hub = [zoo_key(k, hub=True) for k in spec.torch_state_shapes() if k not in ZOO_ABSENT]
    code = [zoo_key(k) for k in spec.torch_state_shapes() if k not in ZOO_ABSENT]
    renamed = [k.replace(".gamma", ".layernorm.gamma").replace(".beta", ".layernorm.beta") for k in hub]
    assert renamed == code


# ------------------------------------------------------------------------------- full-size files
@pytest.mark.parametrize("manifest,official,variant", [
    ("zoo_ms_keys_pretrain_6task.tsv", "official_pt_keys_pretrain_6task.tsv", "zoo"),
    ("zoo_ms_keys_single_task.tsv", "official_pt_keys_single_x2.tsv", "zoo-hub"),
])
def test_full_size_zoo_file_reads_to_the_official_arrays(tmp_path, manifest, official, variant):
    shapes = read_manifest(official)
    spec = IPTSpec.pretrain() if "6task" in manifest else IPTSpec.official("sr_x2")
    state = {k: np.arange(s[-1], dtype=np.int64).reshape(s) if k.endswith("position_ids") else
             np.random.default_rng(len(k)).standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
    state.update(mean_shift_arrays(spec))
    entries = zoo_entries(state, six_task_order="6task" in manifest, variant=variant)
    assert {k: v.shape for k, v in entries.items()} == {
        (z.replace(".layernorm.", ".") if variant == "zoo-hub" else z): s for z, s, _ in zoo_manifest(manifest)
        if z != "-"}
    path = tmp_path / "zoo.ckpt"
    save_like_the_zoo(path, entries)
    got_spec, got = load_weights(path)
    assert read_weight_file(path).layout == variant
    assert got_spec.task_names == spec.task_names and got_spec == spec
    assert_same_state(got, state)


# ------------------------------------------------------------------------------- tiny variants
TINY6 = IPTSpec.tiny(scales=(2, 3, 4, 1, 1, 1), task_names=PRETRAIN_TASKS, num_queries=6)


@pytest.fixture(scope="module")
def tiny6_state():
    from parity.seeded import seeded_state

    return seeded_state(TINY6, seed=11)


@pytest.fixture(scope="module")
def tiny6_files(tmp_path_factory, tiny6_state):
    """The same tiny 6-task weights as an official .pt and in every zoo variant."""
    root = tmp_path_factory.mktemp("zoo6")
    files = {"official": root / "official.pt"}
    save_weights(files["official"], tiny6_state, TINY6)
    for variant in ("zoo", "zoo-hub", "zoo-trainer"):
        files[variant] = root / f"{variant}.ckpt"
        save_like_the_zoo(files[variant], zoo_entries(tiny6_state, six_task_order=True, variant=variant))
    return files


@pytest.mark.parametrize("variant,layout", [("zoo", "zoo"), ("zoo-hub", "zoo-hub"), ("zoo-trainer", "zoo")])
def test_six_task_variants_read_like_the_official_file(tiny6_files, tiny6_state, variant, layout):
    weights = read_weight_file(tiny6_files[variant])
    assert weights.layout == layout
    assert (weights.training is not None) == (variant == "zoo-trainer")
    spec, state = load_weights(tiny6_files[variant], num_heads=2)
    assert spec == TINY6  # derain is head 5 and denoise_30 head 3, as in ipt-ms
    assert_same_state(state, tiny6_state)


def test_trainer_checkpoint_reports_its_step(tiny6_files):
    weights = read_weight_file(tiny6_files["zoo-trainer"])
    assert weights.training["global_step"] == 1234
    assert weights.training["optimizer_entries"] == 2 * len(read_ckpt(tiny6_files["zoo"])) + len(ZOO_TRAINER_SCALARS)
    assert "model-zoo trainer checkpoint" in weights.describe_layout()


@pytest.mark.parametrize("task", ["derain", "denoise_30"])
def test_outputs_equal_the_official_file_in_both_frameworks(tiny6_files, task):
    from ipt_ms.predictors import create_predictor

    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 24, 24)).astype(np.float32)
    for framework in ("mindspore", "torch"):
        outs = [create_predictor(framework, str(tiny6_files[name]), task, num_heads=2)[0](x)
                for name in ("official", "zoo", "zoo-trainer")]
        np.testing.assert_array_equal(outs[1], outs[0])
        np.testing.assert_array_equal(outs[2], outs[0])


def test_restore_cli_gives_the_same_bytes(tmp_path, tiny6_files, photo_png):
    from tests.hostile.conftest import run_cli

    raw = {}
    for name in ("official", "zoo-hub"):
        proc = run_cli("restore", "--weights", tiny6_files[name], "--num-heads", "2", "--task", "derain", photo_png,
                       "-o", tmp_path / name, "--save-raw", "-q", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        raw[name] = (tmp_path / name / "astronaut_derain.npy").read_bytes()
    assert raw["official"] == raw["zoo-hub"]


@pytest.mark.parametrize("task,scale", [("sr_x2", 2), ("derain", 1)])
def test_single_task_files_need_the_task_named_like_official_ones(tmp_path, task, scale):
    spec = IPTSpec.tiny(scales=(scale,), task_names=(task,))
    state = standard_state(spec, seed=4)
    path = tmp_path / "single.ckpt"
    save_like_the_zoo(path, zoo_entries(state, six_task_order=False, variant="zoo-hub"))
    found, got = load_weights(path, num_heads=2)
    assert found.task_names == (("sr_x2",) if scale == 2 else ("restore_0",))
    assert found.name_placeholder_task(task) == spec
    named, _ = load_weights(path, num_heads=2, task_names=[task])
    assert named == spec
    assert_same_state(got, state)


def test_older_zoo_code_six_heads_one_query(tmp_path):
    """Before 2022-09 the zoo built 6 heads/tails whatever the task; only head 0 has a query row."""
    single = IPTSpec.tiny(scales=(2,))
    six = IPTSpec.tiny(scales=(2, 3, 4, 1, 1, 1), num_queries=6)
    state = standard_state(six, seed=6)
    state["body.query_embed.weight"] = state["body.query_embed.weight"][:1]
    path = tmp_path / "old.ckpt"
    save_like_the_zoo(path, zoo_entries(state, six_task_order=False))
    spec, got = load_weights(path, num_heads=2)
    assert spec == single
    want = {k: v for k, v in state.items() if not re.match(r"^(head|tail)\.[1-5]\.", k)}
    assert_same_state(got, {k: want[k] for k in single.torch_state_shapes()})
    assert "older zoo code" in read_weight_file(path).describe_layout()


# ------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("variant", ["zoo", "zoo-hub"])
def test_round_trip_zoo_ours_zoo_is_bit_exact(tmp_path, tiny6_files, variant):
    ours = tmp_path / "ours.ckpt"
    convert_file(tiny6_files[variant], ours, num_heads=2)
    assert load_weights(ours)[0] == TINY6  # task names recorded
    back = tmp_path / "back.ckpt"
    convert_file(ours, back, layout=variant)
    original, written = read_ckpt(tiny6_files[variant]), read_ckpt(back)
    assert sorted(written) == sorted(original)
    for key, value in original.items():
        assert written[key].dtype == value.dtype
        np.testing.assert_array_equal(written[key], value, err_msg=key)


def test_trainer_checkpoint_converts_to_its_network(tmp_path, tiny6_files):
    out = tmp_path / "net.ckpt"
    convert_file(tiny6_files["zoo-trainer"], out, layout="zoo")
    original, written = read_ckpt(tiny6_files["zoo"]), read_ckpt(out)
    assert sorted(written) == sorted(original)
    for key in original:
        np.testing.assert_array_equal(written[key], original[key])


def test_single_task_cut_for_mindediting(tmp_path, tiny6_files, tiny6_state):
    out = tmp_path / "ipt_derain_hub.ckpt"
    convert_file(tiny6_files["official"], out, layout="zoo-hub", task="derain")
    entries = read_ckpt(out)
    assert entries["body.query_embed.embedding_table"].shape[0] == 1
    np.testing.assert_array_equal(entries["head.0.0.weight"], tiny6_state["head.5.0.weight"])
    assert not any(".layernorm." in k or k.startswith("head.1") for k in entries)
    spec, _ = load_weights(out, num_heads=2, task_names=["derain"])
    assert spec.task_names == ("derain",) and spec.num_queries == 1


def test_non_standard_mean_shift_is_refused(tmp_path, tiny6_state):
    state = dict(tiny6_state)
    state["add_mean.bias"] = state["add_mean.bias"] + 1.0
    out = tmp_path / "zoo.ckpt"
    with pytest.raises(IPTError, match="add_mean.bias .*no mean-shift cells"):
        save_weights(out, state, TINY6, layout="zoo")
    with pytest.raises(IPTError, match="no mean-shift cells"):
        save_weights(out, tiny6_state, TINY6.replace(rgb_range=1), layout="zoo")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_zoo_layout_is_a_ckpt(tmp_path, tiny6_state):
    with pytest.raises(IPTError, match="name the output .ckpt"):
        save_weights(tmp_path / "zoo.pt", tiny6_state, TINY6, layout="zoo")


@pytest.mark.parametrize("extra,match", [
    ({"body.encoder.layers.0.self_attn.in_proj_weight": np.zeros((216, 72), np.float32)}, "mixes key layouts"),
    ({"sub_mean.weight": np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)}, "mixes key layouts"),
    ({"body.encoder.layers.0.norm1.gamma": np.ones(72, np.float32)}, "mixes model-zoo LayerNorm names"),
])
def test_mixed_files_are_refused(tmp_path, tiny6_state, extra, match):
    entries = zoo_entries(tiny6_state, six_task_order=True)
    path = tmp_path / "mixed.ckpt"
    save_like_the_zoo(path, {**entries, **extra})
    with pytest.raises(IPTError, match=match):
        load_weights(path)


def test_unknown_trainer_entries_are_listed(tmp_path, tiny6_state):
    entries = zoo_entries(tiny6_state, six_task_order=True, variant="zoo-trainer")
    entries["moment1.model.body.nothing"] = np.zeros(3, np.float32)
    entries["model.extra.weight"] = np.zeros(3, np.float32)
    path = tmp_path / "trainer.ckpt"
    save_like_the_zoo(path, entries)
    with pytest.raises(IPTError, match=r"unexpected \d+: .*extra\.weight"):
        load_weights(path, num_heads=2)


# ------------------------------------------------------------------------------- registry
def test_registry_lists_and_builds():
    import ipt_ms

    assert ipt_ms.list_models() == ["ipt_denoise_30", "ipt_denoise_50", "ipt_derain", "ipt_pretrain", "ipt_small",
                                    "ipt_sr_x2", "ipt_sr_x3", "ipt_sr_x4", "ipt_tiny"]
    assert ipt_ms.list_models("ipt_sr_*") == ["ipt_sr_x2", "ipt_sr_x3", "ipt_sr_x4"]
    assert ipt_ms.model_spec("ipt_pretrain") == IPTSpec.pretrain()
    assert ipt_ms.model_spec("ipt_sr_x2").num_parameters() == 115_460_443
    with pytest.raises(IPTError, match="unknown model 'ipt_x2'; available: ipt_denoise_30"):
        ipt_ms.model_spec("ipt_x2")
    with pytest.raises(IPTError, match="unknown architecture option.*depth"):
        ipt_ms.model_spec("ipt_tiny", depth=3)


def test_create_model_loads_a_zoo_file_strictly(tmp_path):
    import ipt_ms
    from ipt_ms.train.weights import network_arrays
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(1,), task_names=("denoise_30",))
    state = seeded_state(spec, seed=2)
    path = tmp_path / "ipt_denoise30_hub.ckpt"
    save_like_the_zoo(path, zoo_entries(state, six_task_order=False, variant="zoo-hub"))
    net, got = ipt_ms.create_model("ipt_tiny", path, scales=(1,), task_names=("denoise_30",), num_queries=1)
    assert got == spec
    from ipt_ms.convert.keymap import mindspore_to_torch

    assert_same_state(mindspore_to_torch(network_arrays(net), spec), state)
    with pytest.raises(IPTError, match=r"does not hold ipt_tiny: scales \(1,\) \(wanted \(2, 1\)\)"):
        ipt_ms.create_model("ipt_tiny", path)


def test_mindspore_adam_checkpoint_without_prefix(tmp_path, tiny6_state):
    """ipt-ms's own network trained with MindSpore's Adam (Model.train + ModelCheckpoint): moments beside it."""
    from ipt_ms.convert.keymap import torch_to_mindspore

    params = torch_to_mindspore(tiny6_state, TINY6)
    entries = {**params, **{f"moment{i}.{k}": np.zeros_like(v) for i in (1, 2) for k, v in params.items()},
               "global_step": np.array([10], np.int32), "learning_rate": np.array(1e-4, np.float32)}
    path = tmp_path / "ms_adam.ckpt"
    save_like_the_zoo(path, entries)
    weights = read_weight_file(path)
    assert weights.layout == "mindspore" and weights.training["kind"] == "MindSpore Adam training checkpoint"
    spec, state = load_weights(path, num_heads=2)
    assert spec == TINY6
    assert_same_state(state, tiny6_state)
