"""ONNX export: graph contract (docs/design.md "ONNX contract") and ONNX Runtime against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from vidtldr_deploy import __version__
from vidtldr_deploy.core.merge import bipartite_merge
from vidtldr_deploy.core.saliency import saliency_from_qk
from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.export import onnx_functions
from vidtldr_deploy.export.metadata import ExportSpec, read_metadata
from vidtldr_deploy.export.onnx_export import export_onnx
from vidtldr_deploy.models.registry import get_architecture

SCHEDULE = "7,5,3"  # 64 -> 57 -> 52 -> 49 tokens: an odd N enters the second merge


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = get_architecture("umt-tiny").build(4).eval()
    with torch.no_grad():  # non-trivial norms and biases so every parameter matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=["onnx", "plugin"])
def exported(request, tmp_path_factory):
    model = _tiny_model()
    schedule = resolve_schedule(SCHEDULE, model.cfg.depth, model.num_tokens)
    path = tmp_path_factory.mktemp("export") / f"tiny_{request.param}.onnx"
    spec = ExportSpec("umt-tiny", 4, 2, schedule, request.param, checkpoint_sha256="ab" * 32)
    proto = export_onnx(model, spec, path)
    return request.param, model, schedule, path, proto


def test_graph_contract(exported):
    impl, model, schedule, path, proto = exported
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (inp,) = proto.graph.input
    assert inp.name == "video"
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == [2, 3, 4, 32, 32]
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    assert outs == {"tokens": [2, 49, 64], "pooled": [2, 64]}
    meta = read_metadata(proto)
    assert meta["version"] == __version__
    assert meta["checkpoint_sha256"] == "ab" * 32
    assert meta["merge_impl"] == impl
    assert [row["r"] for row in json.loads(meta["schedule"])["layers"]] == [7, 5, 3, 0]


def test_no_scatter_with_reduction(exported):
    _, _, _, _, proto = exported
    nodes = list(proto.graph.node) + [n for f in proto.functions for n in f.node]
    assert not [n for n in nodes if n.op_type.startswith("Scatter")]


def test_plugin_nodes_and_local_functions(exported):
    impl, model, schedule, _, proto = exported
    custom = [n for n in proto.graph.node if n.domain == onnx_functions.DOMAIN]
    if impl == "onnx":
        assert custom == [] and len(proto.functions) == 0
        return
    assert [n.op_type for n in custom] == ["Saliency", "Merge"] * 3
    attrs = [{a.name: helper.get_attribute_value(a) for a in n.attribute} for n in custom]
    for a in attrs:
        assert a["plugin_namespace"] == b"vidtldr" and a["plugin_version"] == b"1"
    assert [a["r"] for a in attrs if "r" in a] == [7, 5, 3]
    scales = [a["scale"] for a in attrs if "scale" in a]
    assert scales == pytest.approx([model.blocks[0].attn.scale] * 3)
    assert {(f.domain, f.name) for f in proto.functions} == {
        ("vidtldr", "Saliency"),
        ("vidtldr", "Merge"),
    }
    assert ("vidtldr", 1) in {(o.domain, o.version) for o in proto.opset_import}


def test_onnxruntime_matches_pytorch(exported):
    _, model, schedule, path, _ = exported
    video = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    model.set_schedule(schedule.rs)
    with torch.no_grad():
        ref_tokens, ref_pooled = model(video)
    tokens, pooled = ort.InferenceSession(str(path)).run(None, {"video": video.numpy()})
    np.testing.assert_allclose(tokens, ref_tokens.numpy(), atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(pooled, ref_pooled.numpy(), atol=2e-5, rtol=1e-4)


def test_bad_output_directory_leaves_nothing(tmp_path):
    from vidtldr_deploy.errors import VidTLDRError

    model = _tiny_model()
    schedule = resolve_schedule("4", model.cfg.depth, model.num_tokens)
    with pytest.raises(VidTLDRError, match="does not exist"):
        export_onnx(model, ExportSpec("umt-tiny", 4, 1, schedule), tmp_path / "missing" / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# --- the local functions alone, against the reference maths -----------------------------------


def _single_op_session(op_type: str, inputs, outputs, **attrs) -> ort.InferenceSession:
    node = helper.make_node(
        op_type, [n for n, _ in inputs], [n for n, _ in outputs], domain="vidtldr",
        plugin_namespace="vidtldr", plugin_version="1", **attrs,
    )  # fmt: skip
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vidtldr", 1)],
        functions=onnx_functions.local_functions(),
    )  # fmt: skip
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("n,r", [(9, 1), (9, 4), (10, 5), (12, 3)])
def test_merge_function_matches_reference(n, r):
    gen = torch.Generator().manual_seed(n * 10 + r)
    b, c = 3, 5
    x = torch.randn(b, n, c, generator=gen)
    x[1, 2] = 0.0  # a zero-norm token
    x[2, 5] = x[2, 3]  # identical tokens: ties in the similarity
    size = 1 + torch.rand(b, n, generator=gen) * 3
    score = torch.rand(b, n, generator=gen)
    score[0, :4] = 0.0  # background sources
    sess = _single_op_session(
        "Merge", [("x", [b, n, c]), ("size", [b, n]), ("score", [b, n])],
        [("x_out", [b, n - r, c]), ("size_out", [b, n - r])], r=r,
    )  # fmt: skip
    x_out, size_out = sess.run(None, {"x": x.numpy(), "size": size.numpy(), "score": score.numpy()})
    ref_x, ref_size = bipartite_merge(x, size, score, r)
    np.testing.assert_allclose(x_out, ref_x.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(size_out, ref_size.numpy(), rtol=1e-6)


@pytest.mark.parametrize("degenerate", [False, True])
def test_saliency_function_matches_reference(degenerate):
    gen = torch.Generator().manual_seed(3)
    b, h, n, d = 2, 3, 11, 4
    q = torch.zeros(b, h, n, d) if degenerate else torch.randn(b, h, n, d, generator=gen)
    k = torch.randn(b, h, n, d, generator=gen)
    sess = _single_op_session(
        "Saliency", [("q", [b, h, n, d]), ("k", [b, h, n, d])], [("score", [b, n])], scale=0.5
    )
    (score,) = sess.run(None, {"q": q.numpy(), "k": k.numpy()})
    ref = saliency_from_qk(q, k, 0.5).numpy()
    # Scores are entropies rescaled by their spread, which magnifies softmax rounding a little.
    np.testing.assert_allclose(score, ref, rtol=1e-4, atol=2e-5)
    if degenerate:  # uniform attention: no evidence of background, every token scores 1
        np.testing.assert_array_equal(score, np.ones_like(score))
