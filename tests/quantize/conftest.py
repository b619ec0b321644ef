"""Shared, session-scoped exports of the tiny demo UMT (both merge impls) and their INT8 graphs:
exporting is the slow part, so every quantize test reuses them."""

from __future__ import annotations

import pytest

from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.export.metadata import ExportSpec
from vidtldr_deploy.export.onnx_export import export_onnx
from vidtldr_deploy.export.quantize import quantize_graph
from vidtldr_deploy.models.source import load_source
from vidtldr_deploy.validate.inputs import make_inputs

SCHEDULE = "0.25x2"


@pytest.fixture(scope="session")
def demo():
    loaded = load_source("demo")
    model = loaded.model
    schedule = loaded.schedule(SCHEDULE)
    return loaded, schedule


@pytest.fixture(scope="session")
def demo_shape(demo):
    loaded, _ = demo
    side = loaded.model.cfg.img_size
    return (1, 3, loaded.frames, side, side)


@pytest.fixture(scope="session")
def calibration_clips(demo_shape):
    return make_inputs(demo_shape, seed=11, count=3)


@pytest.fixture(scope="session", params=["onnx", "plugin"])
def exported(request, demo, tmp_path_factory):
    loaded, schedule = demo
    impl = request.param
    path = tmp_path_factory.mktemp(f"int8_{impl}") / f"demo_{impl}.onnx"
    spec = ExportSpec(arch=loaded.arch, frames=loaded.frames, batch=1, schedule=schedule,
                      merge_impl=impl, checkpoint=loaded.label)  # fmt: skip
    export_onnx(loaded.model, spec, path)
    return impl, path


@pytest.fixture(scope="session")
def quantized(exported, calibration_clips):
    impl, path = exported
    out = path.with_name(f"demo_{impl}.int8.onnx")
    result = quantize_graph(path, out, calibration_clips, "3 seeded test clips")
    return impl, path, out, result
