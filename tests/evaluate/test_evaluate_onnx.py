"""evaluate/ on an exported graph run by ONNX Runtime, its schedule read from the graph."""

from __future__ import annotations

import pytest

from support.tiny_models import moving_blocks, tiny_model
from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.evaluate import GraphTarget, evaluate, rs_from_metadata

pytest.importorskip("onnxruntime")


def test_onnx_graph_against_pytorch(tmp_path):
    from vidtldr_deploy.export.metadata import ExportSpec, read_metadata
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    model = tiny_model()
    schedule = resolve_schedule("16,8", model.cfg.depth, model.num_tokens)
    path = tmp_path / "tiny.onnx"
    proto = export_onnx(model, ExportSpec("umt-tiny", 4, 2, schedule, "onnx"), path)
    clips = moving_blocks(5, seed=2)
    with OnnxRuntimeRunner(path) as runner:
        target = GraphTarget(runner, rs_from_metadata(read_metadata(proto)), "ort")
        result = evaluate(model, clips, [f"c{i}" for i in range(5)], [target, "16,8"])
    graph, torch_run = result.schedules
    assert graph.schedule.rs == schedule.rs
    assert graph.metrics.cosine_mean == pytest.approx(torch_run.metrics.cosine_mean, abs=1e-4)
    assert graph.metrics.recall_at_1 == torch_run.metrics.recall_at_1
