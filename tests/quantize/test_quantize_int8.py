"""INT8 Q/DQ quantization of exported graphs: both merge impls, the merge islands stay
fp32, calibration data is what was given, metadata and local functions survive."""

from __future__ import annotations

import ast
import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import quantize_static

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.merge_islands import (
    TRANSPARENT_OPS,
    island_nodes,
    merge_hidden_inputs,
    merge_island_violations,
    residual_feeders,
)
from vidtldr_deploy.export.quantize import (
    QuantizeSettings,
    _reattach_functions,
    clip_reader,
    ort_quantize_options,
    quantize_graph,
    weight_nodes,
)
from vidtldr_deploy.validate.inputs import make_inputs


def _count(model: onnx.ModelProto, op: str) -> int:
    return sum(n.op_type == op for n in model.graph.node)


def _meta(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    """Scale of every activation QuantizeLinear (weights are stored quantized, not re-quantized)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits and inits[n.input[1]].size == 1
    }


def test_weight_nodes_are_the_linear_layers_and_patch_conv(exported, demo):
    _, path = exported
    model = onnx.load(str(path))
    nodes = weight_nodes(model)
    depth = demo[0].model.cfg.depth
    by_name = {n.name: n for n in model.graph.node}
    assert len(nodes) == 4 * depth + 1  # qkv, proj, fc1, fc2 per block + the patch Conv
    assert sum(by_name[n].op_type == "Conv" for n in nodes) == 1
    assert not {n.node for n in island_nodes(model)} & set(nodes)


def test_quantized_graph_runs_and_is_qdq(quantized, demo_shape):
    impl, _, out, result = quantized
    model = onnx.load(str(out))
    assert result.ok and result.precision == "int8" and result.merge_impl == impl
    assert _count(model, "QuantizeLinear") > 0 and _count(model, "DequantizeLinear") > 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"video": make_inputs(demo_shape, seed=3, count=1)[0]})
    assert all(np.all(np.isfinite(g)) for g in got)


def test_islands_stay_fp32(quantized):
    impl, _, out, result = quantized
    model = onnx.load(str(out))
    islands = island_nodes(model)
    # The walker must still see the islands after quantization (node metadata / vidtldr nodes).
    assert islands, "no merge island found in the quantized graph"
    if impl == "plugin":
        assert {n.island.split()[0] for n in islands} == {"vidtldr::Saliency", "vidtldr::Merge"}
    else:
        assert {n.island for n in islands} == {
            "blocks.0.saliency",
            "blocks.0.merge",
            "blocks.1.saliency",
            "blocks.1.merge",
        }
    assert merge_island_violations(model) == []
    assert result.violations == []


def _dequantized_inputs(model: onnx.ModelProto, node: onnx.NodeProto) -> list[str]:
    """The inputs of `node` that come from a DequantizeLinear, directly or through data-movement
    ops (the way TensorRT would see an INT8 layer)."""
    producer = {t: n for n in model.graph.node for t in n.output if t}
    found = []
    for tensor in node.input:
        stack, seen = [tensor], set()
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if p is None or t in seen:
                continue
            seen.add(t)
            if p.op_type == "DequantizeLinear":
                found.append(tensor)
            elif p.op_type in TRANSPARENT_OPS:
                stack.extend(x for x in p.input[:1] if x)
    return found


def _module(node: onnx.NodeProto) -> str:
    """The torch module a weight node came from (torch.onnx's name scopes end with the op)."""
    scopes = {p.key: p.value for p in node.metadata_props}["pkg.torch.onnx.name_scopes"]
    return ast.literal_eval(scopes)[-2]


def test_near_merge_weight_nodes_stay_fp32(quantized, exported):
    """keep_fp32_near_merges (the default): the patch-embedding Conv, each merge layer's attention
    projection and fc2 of the block before the second merge layer get no Q/DQ; every other weight
    node is INT8; the merge islands are still fp32 and the walker still finds them."""
    impl, path, out, result = quantized
    source = onnx.load(str(path))
    by_name = {n.name: n for n in source.graph.node}
    kept = residual_feeders(source, weight_nodes(source))
    assert result.settings.keep_fp32_near_merges
    assert result.kept_fp32_nodes == kept
    assert sorted(_module(by_name[n]) for n in kept) == [
        "blocks.0.attn.proj", "blocks.0.mlp.fc2", "blocks.1.attn.proj", "patch_embed.proj",
    ]  # fmt: skip
    model = onnx.load(str(out))
    nodes = {n.name: n for n in model.graph.node}
    for name in kept:
        assert _dequantized_inputs(model, nodes[name]) == [], name
    assert set(result.quantized_nodes) == set(weight_nodes(source)) - set(kept)
    for name in result.quantized_nodes:
        assert len(_dequantized_inputs(model, nodes[name])) == 2, name  # activation and weight
    assert island_nodes(model) and merge_island_violations(model) == []
    q = json.loads(_meta(model)["vidtldr.quantization"])
    assert q["kept_fp32"] == kept and q["settings"]["keep_fp32_near_merges"] is True


def test_near_merges_off_quantizes_every_weight_node(exported, calibration_clips, tmp_path):
    _, path = exported
    settings = QuantizeSettings(keep_fp32_near_merges=False)
    result = quantize_graph(path, tmp_path / "all.onnx", calibration_clips, "", settings)
    source = onnx.load(str(path))
    assert result.kept_fp32_nodes == [] and result.quantized_nodes == weight_nodes(source)
    model = onnx.load(str(tmp_path / "all.onnx"))
    nodes = {n.name: n for n in model.graph.node}
    assert all(len(_dequantized_inputs(model, nodes[n])) == 2 for n in result.quantized_nodes)
    assert merge_island_violations(model) == []


def test_residual_feeders_stop_at_the_budget(exported):
    """One residual Add: only what is summed into the merge input itself (patch embedding and
    each merge layer's projection), not the previous block's fc2."""
    _, path = exported
    model = onnx.load(str(path))
    by_name = {n.name: n for n in model.graph.node}
    one = residual_feeders(model, weight_nodes(model), residual_adds=1)
    assert sorted(_module(by_name[n]) for n in one) == [
        "blocks.0.attn.proj", "blocks.1.attn.proj", "patch_embed.proj",
    ]  # fmt: skip
    assert len(merge_hidden_inputs(model)) == 2


def test_walker_finds_a_quantized_island(exported, calibration_clips, tmp_path):
    """Quantize carelessly (every MatMul, Conv and LayerNorm): Q/DQ lands on island paths, the
    walker says where, and quantize_graph's self-check would refuse such a graph."""
    impl, path = exported
    options = ort_quantize_options(QuantizeSettings(), [])
    options.update(
        nodes_to_quantize=None, op_types_to_quantize=["MatMul", "Conv", "LayerNormalization"]
    )
    options["extra_options"]["MatMulConstBOnly"] = False
    bad = tmp_path / "careless.onnx"
    quantize_static(str(path), str(bad), clip_reader("video", calibration_clips), **options)
    violations = merge_island_violations(onnx.load(str(bad)))
    assert violations
    assert all("merge island" not in v for v in violations)  # messages name the island
    word = "vidtldr::Merge" if impl == "plugin" else "blocks."
    assert any(word in v for v in violations)


def test_outputs_within_int8_tolerances(quantized, demo, demo_shape):
    from vidtldr_deploy.validate.int8 import MIN_DECISION_AGREEMENT, validate_int8

    _, _, out, _ = quantized
    loaded, schedule = demo
    result = validate_int8(out, loaded, schedule, make_inputs(demo_shape, seed=5, count=3))
    pooled = next(o for o in result.validation.outputs if o.name == "pooled")
    assert pooled.passed, pooled.failures
    assert result.validation.passed
    assert [a.layer for a in result.decisions] == [0, 1]
    assert result.agreement >= MIN_DECISION_AGREEMENT
    assert result.passed
    json.dumps(result.to_dict())


def test_calibration_reads_the_given_clips(exported, calibration_clips, tmp_path):
    _, path = exported
    # Every weight node quantized, the patch-embedding Conv included, so that the clip itself is a
    # quantized activation (by default that Conv feeds block 0's merge and stays fp32).
    every = QuantizeSettings(keep_fp32_near_merges=False)
    a = quantize_graph(path, tmp_path / "a.onnx", calibration_clips, "clips a", every)
    louder = [c * 4.0 for c in calibration_clips]
    b = quantize_graph(path, tmp_path / "b.onnx", louder, "clips b", every)
    scales_a = _activation_scales(onnx.load(str(tmp_path / "a.onnx")))
    scales_b = _activation_scales(onnx.load(str(tmp_path / "b.onnx")))
    assert scales_a.keys() == scales_b.keys() and scales_a
    # The patch embedding's input is the clip itself: its scale follows the clips' range exactly.
    assert scales_b["video"] == pytest.approx(4.0 * scales_a["video"], rel=1e-5)
    assert any(scales_a[k] != scales_b[k] for k in scales_a if k != "video")
    calib = json.loads(_meta(onnx.load(str(tmp_path / "a.onnx")))["vidtldr.calibration"])
    assert calib["source"] == "clips" and calib["count"] == len(calibration_clips)
    assert calib["description"] == "clips a" and not a.warnings
    first = hashlib.sha256(np.ascontiguousarray(calibration_clips[0], np.float32).tobytes())
    assert calib["clip_sha256"][0] == first.hexdigest()
    assert a.calibration.sha256 != b.calibration.sha256


def test_no_calibration_clips_warns(exported, tmp_path):
    _, path = exported
    result = quantize_graph(
        path, tmp_path / "r.onnx", None, settings=QuantizeSettings(random_clips=2)
    )
    assert result.calibration.source == "random" and result.calibration.count == 2
    assert len(result.warnings) == 1
    assert "random" in result.warnings[0] and "meaningless" in result.warnings[0]
    assert result.to_dict()["warnings"] == result.warnings
    calib = json.loads(_meta(onnx.load(str(tmp_path / "r.onnx")))["vidtldr.calibration"])
    assert calib["source"] == "random"


def test_metadata_preserved_and_marked_int8(quantized):
    _, path, out, _ = quantized
    before = _meta(onnx.load(str(path)))
    after = _meta(onnx.load(str(out)))
    assert {k: v for k, v in after.items() if k in before} == before
    assert after["vidtldr.precision"] == "int8"
    q = json.loads(after["vidtldr.quantization"])
    assert q["format"] == "QDQ" and q["tool"].startswith("onnxruntime.quantization")
    assert json.loads(after["vidtldr.calibration"])["description"] == "3 seeded test clips"


def test_plugin_form_keeps_nodes_and_functions(quantized):
    impl, path, out, result = quantized
    if impl != "plugin":
        pytest.skip("the onnx form has no vidtldr nodes")
    source, model = onnx.load(str(path)), onnx.load(str(out))
    fns = {(f.domain, f.name) for f in model.functions}
    assert fns == {("vidtldr", "Saliency"), ("vidtldr", "Merge")}
    assert any(o.domain == "vidtldr" for o in model.opset_import)
    kinds = lambda m: sorted(n.op_type for n in m.graph.node if n.domain == "vidtldr")  # noqa: E731
    assert kinds(model) == kinds(source) == ["Merge", "Merge", "Saliency", "Saliency"]
    assert not result.functions_reattached  # ORT kept them; the re-attach is a safety net


def test_reattach_restores_dropped_functions(quantized):
    impl, path, out, _ = quantized
    source, model = onnx.load(str(path)), onnx.load(str(out))
    del model.functions[:]
    assert _reattach_functions(model, source) == bool(source.functions)
    assert len(model.functions) == len(source.functions)


def test_refusals(exported, quantized, demo_shape, tmp_path):
    _, path = exported
    _, _, out, _ = quantized
    with pytest.raises(VidTLDRError, match="shape"):
        quantize_graph(path, tmp_path / "x.onnx", [np.zeros((1, 3, 2, 8, 8), np.float32)])
    with pytest.raises(VidTLDRError, match="fp8"):
        quantize_graph(path, tmp_path / "x.onnx", settings=QuantizeSettings(precision="fp8"))
    with pytest.raises(VidTLDRError, match="already int8"):
        quantize_graph(out, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
