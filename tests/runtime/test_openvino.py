"""The OpenVINO runner: f32 equal to ONNX Runtime (both merge forms), bf16 with merge-decision
agreement reported, devices refused by name, the TensorRT-only graph form refused, IR round trip,
and `vidtldr profile --runtime openvino` with the common ONNX Runtime baseline."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest

pytest.importorskip("openvino")

from vidtldr_deploy.errors import EnvironmentProblem  # noqa: E402
from vidtldr_deploy.export.metadata import GraphFormError, read_metadata  # noqa: E402
from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from vidtldr_deploy.runtime.openvino import (  # noqa: E402
    DEFAULT_KEEP_F32,
    KEEP_PRECISION_ATTRIBUTE,
    OpenVinoRunner,
    inline_merge_functions,
    ir_metadata,
    keep_f32_nodes,
    write_ir,
)


def _clip(runner, seed=0):
    return np.random.default_rng(seed).standard_normal(runner.input_shape).astype(np.float32)


@pytest.mark.parametrize("form", ["onnx", "plugin"])
def test_f32_equals_onnxruntime(demo_graphs, form):
    """The explicit f32 hint: this machine's CPU plugin default (bf16 where the CPU has it) flips
    merge decisions; the plugin form runs through its inlined local functions."""
    with OpenVinoRunner(demo_graphs[form]) as ov, OnnxRuntimeRunner(demo_graphs[form]) as ort:
        video = _clip(ov)
        got, want = ov.run(video), ort.run(video)
    assert set(got) == set(want) == {"tokens", "pooled"}
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-3, rtol=0)
    np.testing.assert_allclose(got["pooled"], want["pooled"], atol=1e-4, rtol=0)


def test_bf16_keeps_the_islands_f32(demo_graphs):
    """The keep-precision attribute reaches the CPU plugin: far more island operations execute in
    f32 with it than without it (the execution graph says so)."""
    model = onnx.load(str(demo_graphs["onnx"]))
    islands = keep_f32_nodes(model, set(), "islands")
    with OpenVinoRunner(demo_graphs["onnx"], precision="bf16", keep_f32="islands") as kept:
        with_attr = kept.runtime_precisions(islands)
    with OpenVinoRunner(demo_graphs["onnx"], precision="bf16", keep_f32="none") as low:
        without = low.runtime_precisions(islands)
    if "bf16" not in without:
        pytest.skip("this CPU runs nothing in bf16 (no bf16 units): nothing to keep f32")
    assert with_attr.get("f32", 0) > without.get("f32", 0)
    assert with_attr.get("bf16", 0) < without["bf16"]


def test_validate_bf16_reports_merge_decisions(cli, demo_graphs, tmp_path):
    report = tmp_path / "v.json"
    result = cli("validate", demo_graphs["onnx"], "--runtime", "openvino", "--precision", "bf16",
                 "--report", report)  # fmt: skip
    data = json.loads(report.read_text())
    assert data["runtime"] == "openvino" and data["precision"] == "bf16"
    decisions = data["merge_decisions"]
    assert 0.0 <= decisions["agreement"] <= 1.0 and len(decisions["layers"]) == 2
    assert result.exit_code == (0 if data["passed"] else 1)
    assert "merge decisions agreeing" in result.output


def test_unknown_device_refused_by_name(cli, demo_graphs):
    import openvino as ov

    if "NPU" in ov.Core().available_devices:
        pytest.skip("this machine has an NPU")
    result = cli("validate", demo_graphs["onnx"], "--runtime", "openvino", "--device", "NPU")
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    with pytest.raises(EnvironmentProblem, match="available: CPU"):
        with OpenVinoRunner(demo_graphs["onnx"], device="NPU"):
            pass


def test_plugin_form_without_functions_refused(demo_source, tmp_path):
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx

    spec = ExportSpec(demo_source.arch, demo_source.frames, 1, demo_source.schedule("0.25x2"),
                      "plugin", checkpoint=demo_source.label, graph_form="trt")  # fmt: skip
    path = tmp_path / "trt.onnx"
    export_onnx(demo_source.model, spec, path)
    with pytest.raises(GraphFormError, match="merge-impl onnx"):
        with OpenVinoRunner(path):
            pass


def test_plugin_form_inlines_into_islands(demo_graphs):
    model = onnx.load(str(demo_graphs["plugin"]))
    flat, inlined = inline_merge_functions(model)
    assert inlined and not any(n.domain == "vidtldr" for n in flat.graph.node)
    assert inlined <= {n.name for n in flat.graph.node}


def test_ir_round_trip(cli, tmp_path):
    """vidtldr-export -o m.xml: the graph, then IR (.xml + .bin) with the islands marked and the
    metadata in rt_info, validated in OpenVINO; the IR validates again on its own and runs like
    the graph it came from."""
    xml = tmp_path / "m.xml"
    result = cli("export", "demo-random", "-o", xml, "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert xml.exists() and xml.with_suffix(".bin").exists() and xml.with_suffix(".onnx").exists()
    assert json.loads((tmp_path / "r.openvino.json").read_text())["runtime"] == "openvino"
    graph = onnx.load(str(xml.with_suffix(".onnx")))
    assert ir_metadata(xml) == read_metadata(graph)
    assert set(_marked(xml)) == keep_f32_nodes(graph, set(), DEFAULT_KEEP_F32) & set(_layers(xml))
    assert cli("validate", xml).exit_code == 0
    with OpenVinoRunner(xml) as ir, OpenVinoRunner(xml.with_suffix(".onnx")) as src:
        video = _clip(ir)
        np.testing.assert_array_equal(ir.run(video)["pooled"], src.run(video)["pooled"])


def _layers(xml) -> list[str]:
    return [layer.get("name") for layer in ET.parse(xml).getroot().iter("layer")]


def _marked(xml) -> list[str]:
    return [layer.get("name") for layer in ET.parse(xml).getroot().iter("layer")
            if any(a.get("name") == KEEP_PRECISION_ATTRIBUTE["name"]
                   for a in layer.iter("attribute"))]  # fmt: skip


@pytest.mark.parametrize("form", ["onnx", "plugin"])
def test_ir_marks_the_islands_to_keep_f32(demo_graphs, tmp_path, form):
    graph = onnx.load(str(demo_graphs[form]))
    xml = tmp_path / "m.xml"
    report = write_ir(demo_graphs[form], xml, keep_f32="islands")
    _, inlined = inline_merge_functions(graph)
    islands = keep_f32_nodes(graph, inlined, "islands")
    marked = set(_marked(xml))
    # Island nodes the frontend folds away (constant transposes, ...) have no IR layer to mark.
    assert marked == islands & set(_layers(xml)) and len(marked) > len(islands) / 2
    assert report["nodes_kept_f32"] == len(marked)
    write_ir(demo_graphs[form], xml, keep_f32="none")
    assert not _marked(xml)


def test_profile_openvino_times_the_onnxruntime_baseline(cli, tmp_path):
    report = tmp_path / "p.json"
    result = cli("profile", "demo-random", "--runtime", "openvino", "-n", "2", "--warmup", "0",
                 "--no-layers", "--threads", "1", "--report", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    for key in ("merged", "baseline", "onnxruntime_fp32_baseline"):
        assert data[key]["iterations"] == 2
    ort_ms = data["onnxruntime_fp32_baseline"]["latency_ms"]["median"]
    merged_ms = data["merged"]["latency_ms"]["median"]
    assert data["speedup_vs_onnxruntime_fp32"] == pytest.approx(ort_ms / merged_ms)
    assert data["speedup"] == pytest.approx(data["baseline"]["latency_ms"]["median"] / merged_ms)
    assert data["flops"]["ideal_speedup"] > 1
    assert "ORT fp32 unmerged" in report.with_suffix(".md").read_text()


def test_profile_openvino_refuses_int8(cli):
    result = cli("profile", "demo-random", "--runtime", "openvino", "--precision", "int8")
    assert result.exit_code == 2
