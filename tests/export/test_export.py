"""`ipt-ms export`: ONNX from MindSpore and from the PyTorch twin, MindIR; round trips against
the source model, dynamic batch, metadata, opsets, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipt_ms.cli import main
from ipt_ms.errors import IPTError
from ipt_ms.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    STAGE_PREFIX,
    export_weights,
    output_paths,
    read_mindir_info,
    read_onnx_info,
)
from tests.export.conftest import TASK

REL_TOL = 1e-4


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: relative to the output's range, as the parity reports measure."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


def _ort(path, x, outputs=None):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(outputs, {INPUT_NAME: x})


def _mindspore_reference(weights, x, task=TASK):
    from ipt_ms.predictors import create_predictor

    predictor, _ = create_predictor("mindspore", str(weights), task, device="cpu")
    return predictor(x)


def _torch_reference(weights, x, task=TASK):
    from ipt_ms.predictors import create_predictor

    predictor, _ = create_predictor("torch", str(weights), task, device="cpu")
    return predictor(x)


def _assert_dynamic_batch_graph(path):
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (inp,) = model.graph.input
    assert inp.name == INPUT_NAME and inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    out = next(o for o in model.graph.output if o.name == OUTPUT_NAME)
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    return model


@pytest.mark.parametrize("source", ["mindspore", "torch"])
def test_onnx_round_trip_and_dynamic_batch(source, ms_onnx, torch_onnx, tiny_pt, tiny_spec, tiles):
    """Exported at batch 2, run at 1 and 5: matches the source framework within 1e-4 relative."""
    path = ms_onnx if source == "mindspore" else torch_onnx
    reference = (_mindspore_reference if source == "mindspore" else _torch_reference)(tiny_pt, tiles)
    for batch in (1, 5):
        (out,) = _ort(path, tiles[:batch], [OUTPUT_NAME])
        assert out.shape == (batch, 3, 72, 72)
        assert _rel(out, reference[:batch]) < REL_TOL
    model = _assert_dynamic_batch_graph(path)
    meta = {p.key: p.value for p in model.metadata_props}
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == (11 if source == "mindspore" else 18)
    assert meta["ipt_opset"] == str(opset) and meta["ipt_source"] == source
    info = read_onnx_info(path)
    assert info.spec == tiny_spec and info.task == TASK and info.task_index == 1 and info.scale == 3
    assert info.stages == tiny_spec.stage_names(TASK)[:-1]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME] + [STAGE_PREFIX + s for s in info.stages]
    assert info.weights_digest and len(info.weights_digest) == 64


@pytest.mark.parametrize("source", ["mindspore", "torch"])
def test_onnx_stage_outputs_follow_the_source_model(source, ms_onnx, torch_onnx, tiny_pt, tiny_spec, tiles):
    """Every exposed stage equals the source framework's stage (token stages are (L, B, E))."""
    from ipt_ms.onnx_runtime import OnnxRuntimePredictor
    from parity.compare import mindspore_stages, torch_stages

    x = tiles[:3]
    predictor = OnnxRuntimePredictor(ms_onnx if source == "mindspore" else torch_onnx, TASK)
    got = predictor.stages(x)
    if source == "mindspore":
        from ipt_ms.inference import load_model

        net, _ = load_model(str(tiny_pt), device="cpu")
        expected = mindspore_stages(net, x, 1)
    else:
        from parity.torch_runner import load_torch_model

        model, _ = load_torch_model(str(tiny_pt))
        expected = torch_stages(model, x, 1)
    assert set(got) == set(tiny_spec.stage_names(TASK))
    for name, value in got.items():
        assert value.shape == expected[name].shape, name
        assert _rel(value, expected[name]) < REL_TOL, name
    assert got["body.encoder.0"].shape[1] == 3  # batch on axis 1 in the body's layout


def test_mindir_round_trip_with_dynamic_batch(tiny_pt, tiny_spec, tmp_path, tiles):
    import mindspore as ms
    from mindspore import nn

    (result,) = export_weights(tiny_pt, tmp_path / "ipt.mindir", fmt="mindir", task="sr_x4", device="cpu")
    assert result.path == tmp_path / "ipt.mindir" and result.path.is_file()
    info = read_mindir_info(result.path)
    assert info.spec == tiny_spec and info.task == "sr_x4" and info.scale == 4
    graph = nn.GraphCell(ms.load(str(result.path)))
    reference = _mindspore_reference(tiny_pt, tiles, "sr_x4")
    for batch in (1, 5):
        out = graph(ms.Tensor(tiles[:batch])).asnumpy()
        assert out.shape == (batch, 3, 96, 96)
        assert _rel(out, reference[:batch]) < REL_TOL
    assert not [p for p in tmp_path.iterdir() if p.name != "ipt.mindir"]  # no temporary files left


def test_opset_conversion_from_mindspore(tiny_pt, tmp_path, tiles):
    (result,) = export_weights(tiny_pt, tmp_path / "o17.onnx", task="denoise_30", opset=17, device="cpu")
    model = _assert_dynamic_batch_graph(result.path)
    assert result.opset == 17 and max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert read_onnx_info(result.path).opset == 17
    (out,) = _ort(result.path, tiles, [OUTPUT_NAME])
    assert _rel(out, _mindspore_reference(tiny_pt, tiles, "denoise_30")) < REL_TOL


def test_all_tasks_one_file_each_via_cli(tiny_pt, tmp_path, capsys):
    assert main(["export", "--weights", str(tiny_pt), "--task", "all", "-o", str(tmp_path / "ipt.onnx"),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for index, task in enumerate(["sr_x2", "sr_x3", "sr_x4", "denoise_30"]):
        path = tmp_path / f"ipt_{task}.onnx"
        info = read_onnx_info(path)
        assert (info.task, info.task_index, info.opset, info.stages) == (task, index, 11, [])
        assert f"{path} (ONNX opset 11, from mindspore, task {task}" in printed


def test_output_paths():
    assert output_paths("a/m.onnx", "onnx", ["sr_x2"], "w") == {"sr_x2": __import__("pathlib").Path("a/m.onnx")}
    paths = output_paths("a/m.onnx", "onnx", ["sr_x2", "derain"], "w")
    assert [p.name for p in paths.values()] == ["m_sr_x2.onnx", "m_derain.onnx"]
    assert [p.name for p in output_paths("outdir", "mindir", ["sr_x2"], "w").values()] == ["w_sr_x2.mindir"]
    with pytest.raises(IPTError, match="should end in .onnx"):
        output_paths("m.mindir", "onnx", ["sr_x2"], "w")


@pytest.mark.parametrize("args,message", [
    (["--format", "mindir", "--source", "torch"], "MindIR can only be exported from MindSpore"),
    (["--source", "torch", "--opset", "17"], "needs ONNX opset >= 18"),
    (["--task", "sr_x8"], "unknown task"),
    (["--format", "mindir", "--with-stages"], "apply to ONNX only"),
])
def test_bad_requests_exit_2_and_write_nothing(tiny_pt, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    suffix = "mindir" if "mindir" in args else "onnx"
    assert main(["export", "--weights", str(tiny_pt), "-o", str(out / f"x.{suffix}"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_not_an_export_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(IPTError, match="not written by `ipt-ms export`"):
        read_onnx_info(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(IPTError, match="not a readable ONNX model"):
        read_onnx_info(tmp_path / "junk.onnx")
    with pytest.raises(IPTError, match="not found"):
        read_onnx_info(tmp_path / "missing.onnx")


def test_metadata_is_plain_json(ms_onnx):
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(ms_onnx)).metadata_props}
    assert json.loads(meta["ipt_spec"])["scales"] == [2, 3, 4, 1]
    assert meta["ipt_task"] == TASK and json.loads(meta["ipt_stages"])[0] == "mean_shift"


def test_released_single_task_file_exports_and_parities_by_task_name(tmp_path):
    """A file like IPT_dn30.pt records only 'scale 1' (task restore_0): export and parity take
    --task denoise_30 as restore and eval do, and the ONNX file records that name."""
    from ipt_ms.convert.weights import save_weights, state_digest
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(1,))
    weights = tmp_path / "dn.pt"
    state = seeded_state(spec, 1)
    save_weights(weights, state, spec)
    out = tmp_path / "dn.onnx"
    assert main(["export", "--weights", str(weights), "--task", "denoise_30", "-o", str(out), "--device", "cpu"]) == 0
    info = read_onnx_info(out)
    assert (info.task, info.task_index) == ("denoise_30", 0)
    assert info.weights_digest == state_digest(spec, state)  # the digest `ipt-ms eval` computes for dn.pt
    assert main(["parity", str(weights), "--task", "denoise_30", "--device", "cpu"]) == 0
