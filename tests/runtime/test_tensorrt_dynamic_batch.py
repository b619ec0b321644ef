"""Dynamic-batch engines (export --max-batch N -o X.plan) against the fake tensorrt
(tests/support/fake_tensorrt.py): the optimisation profile the build sets, the sidecar's batch
range, the runner setting each call's input shape, and the refusals. The last test builds and
runs a real one, skipped without TensorRT and a CUDA GPU."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from support.fake_tensorrt import make_fake_trt, tiny_dynamic_graph, tiny_plugin_graph
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.runtime.tensorrt import build as trt_build
from vidtldr_deploy.runtime.tensorrt import environment as trt_env
from vidtldr_deploy.runtime.tensorrt import plugins as trt_plugins
from vidtldr_deploy.runtime.tensorrt import runner as trt_runner
from vidtldr_deploy.runtime.tensorrt import sidecar as sc

GPU = {"cuda_version": "12.6", "gpu_name": "Fake GPU", "compute_capability": "9.0"}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake tensorrt installed, a plugin library file, and a CPU stand-in for torch.cuda so
    the runner's buffers are host memory the fake engine reads and writes."""
    trt = make_fake_trt("10.3.0", {"Saliency", "Merge"})
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_plugins.ctypes, "CDLL", lambda path, mode=0: None)
    monkeypatch.setattr(trt_plugins, "_LOADED_LIBRARIES", {})
    monkeypatch.setattr(trt_env, "_LOGGER", None)
    for module in (trt_build, trt_runner):
        monkeypatch.setattr(module, "gpu_info", lambda: dict(GPU))
    cpu_cuda = types.SimpleNamespace(
        current_device=lambda: 0,
        Stream=lambda device: types.SimpleNamespace(cuda_stream=0, synchronize=lambda: None),
        stream=lambda s: nullcontext(),
    )
    cpu_torch = types.SimpleNamespace(
        cuda=cpu_cuda, device=lambda *a: torch.device("cpu"), empty=torch.empty,
        from_numpy=torch.from_numpy, **{n: getattr(torch, n) for n in (
            "float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8")},
    )  # fmt: skip
    monkeypatch.setattr(trt_runner, "torch_cuda", lambda: cpu_torch)
    lib = tmp_path / "libvidtldr_plugins.so"
    lib.write_bytes(b"\x7fELF fake plugin library")
    return trt, lib


def test_profile_is_min_1_opt_max_and_the_sidecar_records_it(fake, tmp_path):
    trt, lib = fake
    graph = tiny_dynamic_graph(tmp_path / "dyn.onnx", max_batch=6)
    engine = tmp_path / "dyn.plan"
    sidecar = trt_build.build_engine(graph, engine, plugin_library=lib, opt_batch=2)
    [profile] = trt.calls["profiles"]
    assert profile.shapes == {"video": ((1, 4), (2, 4), (6, 4))}
    assert sidecar.batch == sc.BatchProfile(1, 2, 6)
    assert sidecar.to_dict()["batch"] == {"min": 1, "opt": 2, "max": 6}
    # shapes at the max batch, so every reader of the sidecar sees positive dims
    assert sidecar.inputs["video"]["shape"] == [6, 4]
    assert sidecar.outputs["out"]["shape"] == [6, 4]
    again = sc.read_sidecar(engine)
    assert again == sidecar and again.batch == sc.BatchProfile(1, 2, 6)
    text = sc.sidecar_path(engine).read_text()
    sc.write_sidecar(engine, again)  # read -> rewrite keeps the bytes, batch range included
    assert sc.sidecar_path(engine).read_text() == text
    # opt defaults to the max
    trt_build.build_engine(graph, tmp_path / "d2.plan", plugin_library=lib)
    assert trt.calls["profiles"][0].shapes["video"] == ((1, 4), (6, 4), (6, 4))


def test_static_graph_gets_no_profile(fake, tmp_path):
    trt, lib = fake
    graph = tiny_plugin_graph(tmp_path / "static.onnx")
    sidecar = trt_build.build_engine(graph, tmp_path / "s.plan", plugin_library=lib)
    assert "profiles" not in trt.calls and sidecar.batch is None
    assert sidecar.to_dict()["batch"] is None
    with pytest.raises(InputError, match="--opt-batch 2: .* static batch"):
        trt_build.build_engine(graph, tmp_path / "s2.plan", plugin_library=lib, opt_batch=2)
    assert not (tmp_path / "s2.plan").exists()


@pytest.mark.parametrize("opt", [0, 7, -1])
def test_opt_batch_outside_1_to_max_is_refused_before_the_parse(fake, tmp_path, opt):
    trt, lib = fake
    graph = tiny_dynamic_graph(tmp_path / "dyn.onnx", max_batch=6)
    with pytest.raises(InputError, match=r"--opt-batch must be a whole number in 1\.\.6"):
        trt_build.build_engine(graph, tmp_path / "e.plan", plugin_library=lib, opt_batch=opt)
    assert "network" not in trt.calls and not (tmp_path / "e.plan").exists()


def test_runner_sets_the_input_shape_per_call_and_accepts_1_to_max(fake, tmp_path):
    trt, lib = fake
    graph = tiny_dynamic_graph(tmp_path / "dyn.onnx", max_batch=4)
    engine = tmp_path / "dyn.plan"
    trt_build.build_engine(graph, engine, plugin_library=lib, opt_batch=2)
    clips = np.arange(4 * 4, dtype=np.float32).reshape(4, 4) / 7
    with trt_runner.TensorRTRunner(engine, plugin_library=lib) as runner:

        def run(x):  # copied: here the "device" buffers are host memory the next call reuses
            return runner.run(x)["out"].copy()

        together = run(clips[:3])
        alone = [run(clips[i : i + 1]) for i in range(3)]
        full = run(clips)
        with pytest.raises(InputError, match=r"batch 5 is outside the engine's batch range 1\.\.4"):
            runner.run(np.zeros((5, 4), np.float32))
        with pytest.raises(InputError, match="does not match the engine's input"):
            runner.run(np.zeros((2, 5), np.float32))
    assert trt.calls["input_shapes"] == [(3, 4), (1, 4), (1, 4), (1, 4), (4, 4)]
    assert together.shape == (3, 4) and full.shape == (4, 4)
    np.testing.assert_array_equal(together, 2 * clips[:3] + 1)
    np.testing.assert_array_equal(np.concatenate(alone), together)  # a clip's result is its own


def test_runner_refuses_an_engine_whose_profile_is_not_the_sidecars(fake, tmp_path):
    trt, lib = fake
    graph = tiny_dynamic_graph(tmp_path / "dyn.onnx", max_batch=4)
    engine = tmp_path / "dyn.plan"
    trt_build.build_engine(graph, engine, plugin_library=lib)
    trt.calls["profiles"][0].shapes["video"] = ((1, 4), (4, 4), (8, 4))
    with pytest.raises(InputError, match="batch profile"):
        with trt_runner.TensorRTRunner(engine, plugin_library=lib):
            pass


def test_sidecar_batch_range_is_checked(tmp_path):
    def write(batch, first=4):
        sidecar = sc.make_sidecar(
            tensorrt_version="10.3.0", cuda_version=None, gpu_name=None, compute_capability="9.0",
            precision="fp32", inputs={"video": sc.io_spec((first, 4), "float32")},
            outputs={"out": sc.io_spec((first, 4), "float32")}, schedule=None,
        )  # fmt: skip
        sc.write_engine_and_sidecar(tmp_path / "e.plan", b"engine", sidecar)
        path = sc.sidecar_path(tmp_path / "e.plan")
        data = json.loads(path.read_text())
        if batch is absent:
            del data["batch"]
        else:
            data["batch"] = batch
        path.write_text(json.dumps(data))
        return sc.read_sidecar(tmp_path / "e.plan")

    absent = object()  # a sidecar written before the batch range was recorded
    assert write({"min": 1, "opt": 3, "max": 4}).batch == sc.BatchProfile(1, 3, 4)
    assert write(None).batch is None
    assert write(absent).batch is None
    for bad in ({"min": 1, "opt": 5, "max": 4}, {"min": 0, "opt": 1, "max": 4},
                {"min": 1, "opt": "2", "max": 4}, [1, 2, 4]):  # fmt: skip
        with pytest.raises(InputError, match="batch"):
            write(bad)
    with pytest.raises(InputError, match="max batch 8"):
        write({"min": 1, "opt": 2, "max": 8}, first=4)


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_exported_max_batch_graphs_get_the_profile(fake, tmp_path, dynamic_graphs, impl):
    """Both graph forms of a real --max-batch 4 export: the fake parser reads their dims as
    TensorRT does (the named batch is -1), and only the batch varies in the profile."""
    trt, lib = fake
    sidecar = trt_build.build_engine(
        dynamic_graphs[impl], tmp_path / "e.plan", plugin_library=lib, opt_batch=3
    )
    assert trt.calls["profiles"][0].shapes == {
        "video": ((1, 3, 4, 32, 32), (3, 3, 4, 32, 32), (4, 3, 4, 32, 32))
    }
    assert sidecar.batch == sc.BatchProfile(1, 3, 4)
    assert {n: s["shape"] for n, s in sidecar.outputs.items()} == {
        "tokens": [4, 36, 64], "pooled": [4, 64],
    }  # fmt: skip


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_dynamic_engine_gives_a_clip_the_same_outputs_in_any_batch(dynamic_graphs, tmp_path):
    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        pytest.skip("needs TensorRT and a CUDA GPU")
    engine = tmp_path / "dyn.plan"
    sidecar = trt_build.build_engine(dynamic_graphs["onnx"], engine, opt_batch=2)
    assert sidecar.batch == sc.BatchProfile(1, 2, 4)
    clips = np.random.default_rng(0).standard_normal((3, 3, 4, 32, 32)).astype(np.float32)
    with trt_runner.TensorRTRunner(engine) as runner:
        together = runner.run(clips)
        for i in range(3):
            alone = runner.run(clips[i : i + 1])
            for name, value in alone.items():
                np.testing.assert_allclose(value[0], together[name][i], atol=1e-4, rtol=0)
        with pytest.raises(InputError, match="outside the engine's batch range"):
            runner.run(np.zeros((5, 3, 4, 32, 32), np.float32))
