"""Exported graphs under the tools engineers run on them: Polygraphy (inspect, run,
surgeon sanitize --fold-constants), onnxslim, strict shape re-inference and onnx's
ReferenceEvaluator, on both merge impls; the opset range; the TensorRT graph forms."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import shape_inference
from typer.testing import CliRunner

from vidtldr_deploy.cli.main import app
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.export.config import ExportConfig
from vidtldr_deploy.export.metadata import (
    MAX_OPSET,
    MIN_OPSET,
    TRT_EP_DOMAIN,
    ExportSpec,
    GraphFormError,
    read_metadata,
)
from vidtldr_deploy.export.onnx_export import export_onnx
from vidtldr_deploy.models.source import load_source
from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

IMPLS = ("onnx", "plugin")


@pytest.fixture(scope="module")
def demo():
    loaded = load_source("demo-random")
    return loaded, loaded.schedule("0.25x2")


@pytest.fixture(scope="module")
def video(demo):
    loaded, _ = demo
    side = loaded.model.cfg.img_size
    return np.random.default_rng(0).standard_normal((1, 3, loaded.frames, side, side), np.float32)


@pytest.fixture(scope="module")
def graphs(demo, video, tmp_path_factory):
    """impl -> (path, ONNX Runtime outputs of the graph as exported)."""
    loaded, schedule = demo
    folder = tmp_path_factory.mktemp("graphs")
    out = {}
    for impl in IMPLS:
        path = folder / f"demo_{impl}.onnx"
        export_onnx(loaded.model, ExportSpec(loaded.arch, loaded.frames, 1, schedule, impl), path)
        out[impl] = (path, _ort(path, video))
    return out


def _ort(model, video) -> list[np.ndarray]:
    """`model`: a path or serialized bytes."""
    model = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {"video": video})


def _polygraphy(*args) -> subprocess.CompletedProcess:
    # polygraphy has no __main__: run its console script's entry point with this interpreter.
    code = "import sys; from polygraphy.tools import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def _assert_same(got, want, atol=1e-5):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-4)


def _non_static(model: onnx.ModelProto) -> list[str]:
    values = list(model.graph.value_info) + list(model.graph.output)
    return [
        v.name
        for v in values
        if not v.type.tensor_type.HasField("shape")
        or not all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)
    ]


@pytest.mark.parametrize("impl", IMPLS)
def test_static_through_strict_reinference(graphs, impl):
    model = onnx.load(str(graphs[impl][0]))
    del model.graph.value_info[:]
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    assert len(inferred.graph.value_info) > 50
    assert _non_static(inferred) == []


def test_plugin_form_static_through_onnxruntime_symbolic_inference(graphs):
    """ONNX Runtime's symbolic shape inference (what `polygraphy surgeon sanitize` runs) used to make
    the plugin form's batch symbolic. The onnx form is not covered: the tool has no rule for
    opset-18 ReduceMin with its axes as an input and stops with a TypeError."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(graphs["plugin"][0]))
    del model.graph.value_info[:]
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    assert len(inferred.graph.value_info) > 50
    assert _non_static(inferred) == []


def test_function_constants_are_float32(graphs):
    model = onnx.load(str(graphs["plugin"][0]))
    for fn in model.functions:
        for node in fn.node:
            attrs = [a for a in node.attribute if not a.ref_attr_name]
            assert "value_float" not in {a.name for a in attrs}, f"{fn.name}: {node.output[0]}"


def test_no_negative_gather_axis(graphs):
    for impl in IMPLS:
        model = onnx.load(str(graphs[impl][0]))
        nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
        for node in nodes:
            if node.op_type == "GatherElements":
                axis = next(a.i for a in node.attribute if a.name == "axis")
                assert axis >= 0, node.name


@pytest.mark.parametrize("impl", IMPLS)
def test_reference_evaluator_matches_onnxruntime(graphs, video, impl):
    from onnx.reference import ReferenceEvaluator

    path, want = graphs[impl]
    got = ReferenceEvaluator(str(path)).run(None, {"video": video})
    _assert_same(got, want, atol=5e-4)  # its Softmax/LayerNorm round differently from ORT's


@pytest.mark.parametrize("impl", IMPLS)
def test_polygraphy_inspect_run_and_sanitize(graphs, video, impl, tmp_path):
    path, want = graphs[impl]
    shown = _polygraphy("inspect", "model", path, "--show", "layers")
    assert "video" in shown.stdout
    _polygraphy("run", path, "--onnxrt")
    folded = tmp_path / "folded.onnx"
    _polygraphy("surgeon", "sanitize", path, "--fold-constants", "-o", folded)
    _assert_same(_ort(folded, video), want)


@pytest.mark.parametrize("impl", IMPLS)
def test_onnxslim_keeps_the_graph_runnable(graphs, video, impl):
    import onnxslim

    path, want = graphs[impl]
    slim = onnxslim.slim(onnx.load(str(path)))
    _assert_same(_ort(slim.SerializeToString(), video), want)


# --- opsets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [13, 17, MAX_OPSET + 1])
def test_unsupported_opset_is_refused(demo, tmp_path, opset):
    loaded, schedule = demo
    with pytest.raises(InputError, match=f"{MIN_OPSET}..{MAX_OPSET}"):
        export_onnx(loaded.model, ExportSpec(loaded.arch, loaded.frames, 1, schedule, "plugin",
                                             opset=opset), tmp_path / "m.onnx")  # fmt: skip
    with pytest.raises(InputError, match="--opset"):
        ExportConfig(opset=opset).check()
    result = CliRunner().invoke(app, ["export", "demo-random", "-o", str(tmp_path / "c.onnx"),
                                      "--opset", str(opset)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", range(MIN_OPSET + 1, MAX_OPSET + 1))
def test_supported_opset_is_honoured(demo, video, graphs, tmp_path, opset):
    # Plugin graphs crashed above 18 (function bodies imported opset 18); onnx graphs never did.
    loaded, schedule = demo
    path = tmp_path / "m.onnx"
    spec = ExportSpec(loaded.arch, loaded.frames, 1, schedule, "plugin", opset=opset)
    proto = export_onnx(loaded.model, spec, path)
    assert {(o.domain, o.version) for o in proto.opset_import if o.domain == ""} == {("", opset)}
    for fn in proto.functions:
        assert {(o.domain, o.version) for o in fn.opset_import if o.domain == ""} == {("", opset)}
    assert read_metadata(proto)["opset"] == str(opset)
    # Opset 20 exports GELU as one op, which rounds differently from the erf form.
    _assert_same(_ort(path, video), graphs["plugin"][1], atol=2e-4)


# --- graph forms for TensorRT -------------------------------------------------------------------


def test_trt_form_has_no_local_functions_and_validation_says_so(demo, tmp_path):
    loaded, schedule = demo
    path = tmp_path / "trt.onnx"
    spec = ExportSpec(loaded.arch, loaded.frames, 1, schedule, "plugin", graph_form="trt")
    proto = export_onnx(loaded.model, spec, path)
    assert len(proto.functions) == 0
    assert {n.domain for n in proto.graph.node} >= {"vidtldr"}
    meta = read_metadata(proto)
    assert meta["local_functions"] == "false" and meta["graph_form"] == "trt"
    with pytest.raises(GraphFormError, match="--graph-form trt"), OnnxRuntimeRunner(path):
        pass
    _polygraphy("inspect", "model", path)  # what trtexec/Polygraphy read: loads without functions


def test_trt_ep_form_uses_the_trt_plugins_domain(demo, tmp_path):
    loaded, schedule = demo
    spec = ExportSpec(loaded.arch, loaded.frames, 1, schedule, "plugin", graph_form="trt-ep")
    proto = export_onnx(loaded.model, spec, tmp_path / "ep.onnx")
    custom = [n for n in proto.graph.node if n.op_type in ("Saliency", "Merge")]
    assert custom and {n.domain for n in custom} == {TRT_EP_DOMAIN}
    assert (TRT_EP_DOMAIN, 1) in {(o.domain, o.version) for o in proto.opset_import}
    assert "vidtldr" not in {o.domain for o in proto.opset_import}
    assert len(proto.functions) == 0
    for node in custom:  # the attributes that select the TensorRT creator stay
        assert {"plugin_namespace", "plugin_version"} <= {a.name for a in node.attribute}


def test_graph_form_cli(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(app, ["export", "demo-random", "-o", str(tmp_path / "a.onnx"),
                                  "--merge-impl", "plugin", "--graph-form", "trt"])  # fmt: skip
    assert refused.exit_code == 2 and "--no-validate" in refused.output
    wrong_impl = runner.invoke(app, ["export", "demo-random", "-o", str(tmp_path / "a.onnx"),
                                     "--graph-form", "trt", "--no-validate"])  # fmt: skip
    assert wrong_impl.exit_code == 2 and "--merge-impl plugin" in wrong_impl.output
    assert list(tmp_path.iterdir()) == []
    written = runner.invoke(
        app,
        [
            "export",
            "demo-random",
            "-o",
            str(tmp_path / "b.onnx"),
            "--merge-impl",
            "plugin",
            "--graph-form",
            "trt",
            "--no-validate",
        ],
    )
    assert written.exit_code == 0, written.output
    assert read_metadata(onnx.load(str(tmp_path / "b.onnx")))["local_functions"] == "false"
    validated = runner.invoke(app, ["validate", str(tmp_path / "b.onnx")])
    assert validated.exit_code == 2 and "no local" in validated.output
