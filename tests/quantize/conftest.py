"""Shared, session-scoped exports of the tiny demo UMT (both merge impls) and their INT8 graphs:
exporting is the slow part, so every quantize test reuses them."""

from __future__ import annotations

import pytest

from vidtldr_deploy.export.quantize import quantize_graph
from vidtldr_deploy.validate.inputs import make_inputs

SCHEDULE = "0.25x2"


@pytest.fixture(scope="session")
def demo(demo_source):
    return demo_source, demo_source.schedule(SCHEDULE)


@pytest.fixture(scope="session")
def demo_shape(demo):
    loaded, _ = demo
    side = loaded.model.cfg.img_size
    return (1, 3, loaded.frames, side, side)


@pytest.fixture(scope="session")
def calibration_clips(demo_shape):
    return make_inputs(demo_shape, seed=11, count=3)


@pytest.fixture(scope="session", params=["onnx", "plugin"])
def exported(request, demo_graphs):
    """The shared demo graphs (tests/conftest.py: batch 1, schedule 0.25x2) per merge impl."""
    return request.param, demo_graphs[request.param]


@pytest.fixture(scope="session")
def quantized(exported, calibration_clips):
    impl, path = exported
    out = path.with_name(f"demo_{impl}.int8.onnx")
    result = quantize_graph(path, out, calibration_clips, "3 seeded test clips")
    return impl, path, out, result
