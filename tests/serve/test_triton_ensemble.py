"""--ensemble: the preprocessing model's configs, and its model.py run against a fake Triton
Python backend (triton_python_backend_utils) with a stubbed vidtldr_deploy.clips decoder."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest
from google.protobuf import json_format
from triton_helpers import BATCH, all_configs, io_of, leftovers

pytest.importorskip("tritonclient.grpc")

from vidtldr_deploy.serve import triton as tr


@pytest.fixture
def ensemble_repo(cli, exported, tmp_path):
    repo = tmp_path / "repo"
    r = cli("triton", exported["plugin"], "-o", repo, "--name", "umt", "--ensemble")
    assert r.exit_code == 0, r.output
    return repo


def test_ensemble_configs(ensemble_repo, tmp_path):
    configs = all_configs(ensemble_repo)
    assert set(configs) == {"umt", "umt_preprocess", "umt_ensemble"}
    engine, pre, ens = configs["umt"], configs["umt_preprocess"], configs["umt_ensemble"]
    video = io_of(engine)["video"]
    assert pre.backend == "python" and pre.max_batch_size == 0
    assert io_of(pre) == {"video_bytes": ("TYPE_STRING", [BATCH]), "video": video}
    assert pre.instance_group[0].kind == pre.instance_group[0].KIND_CPU
    assert ens.platform == "ensemble" and ens.max_batch_size == 0
    engine_outputs = {
        o.name: v for o, v in zip(engine.output, [io_of(engine)[o.name] for o in engine.output])
    }
    assert io_of(ens) == {"video_bytes": ("TYPE_STRING", [BATCH]), **engine_outputs}
    first, second = ens.ensemble_scheduling.step
    assert first.model_name == "umt_preprocess" and second.model_name == "umt"
    assert first.output_map["video"] == second.input_map["video"]
    assert set(second.output_map) == {o.name for o in engine.output}
    assert (ensemble_repo / "umt_ensemble" / "1").is_dir()
    readme = (ensemble_repo / "README.md").read_text()
    assert "pip install --no-deps vidtldr-deploy" in readme and 'pip install "numpy<2"' in readme
    assert leftovers(tmp_path) == []


class _Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


class _Response:
    def __init__(self, output_tensors, error=None):
        self.output_tensors, self.error = output_tensors, error


def _fake_pb_utils() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = _Tensor
    pb.InferenceResponse = _Response
    pb.TritonError = lambda msg: RuntimeError(msg)
    pb.triton_string_to_numpy = lambda s: {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}[s]
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)
    return pb


@pytest.fixture
def preprocess_model(ensemble_repo, monkeypatch):
    calls = []

    def decode_clip(data, recipe, frames):
        calls.append((data, recipe, frames))
        if data == b"corrupt":
            raise ValueError("invalid data found when processing input")
        value = float(len(data))
        return np.full((3, frames, 32, 32), value, dtype=np.float64)

    from vidtldr_deploy.clips import ClipRecipe

    clips = types.ModuleType("vidtldr_deploy.clips")
    clips.decode_clip = decode_clip
    clips.ClipRecipe = ClipRecipe
    monkeypatch.setitem(sys.modules, "vidtldr_deploy.clips", clips)
    return _initialized_model(ensemble_repo, monkeypatch, "umt_preprocess_model"), calls


def _initialized_model(ensemble_repo, monkeypatch, module_name: str):
    """The repository's preprocessing model.py, loaded and initialised as the Python backend does."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    path = ensemble_repo / "umt_preprocess" / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = all_configs(ensemble_repo)["umt_preprocess"]
    # What the Python backend passes: the config as JSON with the proto field names.
    args = {
        "model_config": json.dumps(
            json_format.MessageToDict(config, preserving_proto_field_name=True)
        )
    }
    model = module.TritonPythonModel()
    model.initialize(args)
    return model


def _request(items):
    return {"video_bytes": _Tensor("video_bytes", np.array(items, dtype=np.object_))}


def test_preprocess_decodes_a_batch(preprocess_model):
    model, calls = preprocess_model
    (response,) = model.execute([_request([b"abc", b"abcdef"])])
    assert response.error is None
    (out,) = response.output_tensors
    video = out.as_numpy()
    assert (
        out.name == "video" and video.shape == (BATCH, 3, 4, 32, 32) and video.dtype == np.float32
    )
    assert video[0].max() == 3 and video[1].min() == 6
    # The whole recipe and the frames come from the config, not from the model registry.
    from vidtldr_deploy.clips.recipe import recipe_for

    assert [(c[1], c[2]) for c in calls] == [(recipe_for("umt-tiny"), 4)] * 2


def test_preprocess_errors_fail_only_their_request(preprocess_model):
    model, _ = preprocess_model
    wrong_count, corrupt, fine = model.execute(
        [_request([b"abc"]), _request([b"corrupt", b"x"]), _request([b"ab", b"cd"])]
    )
    assert "exactly 2 clips" in str(wrong_count.error)
    assert "preprocess: invalid data" in str(corrupt.error) and corrupt.output_tensors == []
    assert fine.error is None


def test_preprocess_rejects_a_wrong_clip_shape(preprocess_model, monkeypatch):
    model, _ = preprocess_model
    model.decode = lambda data, frames: np.zeros((3, frames, 16, 16))
    (response,) = model.execute([_request([b"a", b"b"])])
    assert "decoded to [3, 4, 16, 16]" in str(response.error)


def test_template_is_shipped():
    assert tr._PREPROCESS_TEMPLATE.is_file()


def test_preprocess_with_the_real_decoder_matches_the_clip_loader(
    ensemble_repo, monkeypatch, tmp_path
):
    """No stub: the shipped model.py decodes encoded video bytes with vidtldr_deploy.clips exactly
    as `--inputs video.mp4` does on the command line."""
    from support.videos import write_video
    from vidtldr_deploy.clips import load_video_clip, recipe_for

    model = _initialized_model(ensemble_repo, monkeypatch, "umt_preprocess_real")
    videos = [write_video(tmp_path / f"c{i}.mp4", 12 + 4 * i) for i in range(BATCH)]
    (response,) = model.execute([_request([v.read_bytes() for v in videos])])
    assert response.error is None
    got = response.output_tensors[0].as_numpy()
    want = np.stack([load_video_clip(v, recipe_for("umt-tiny"), 4) for v in videos])
    np.testing.assert_array_equal(got, want)


def test_dynamic_batch_ensemble_batches_every_model(cli, dynamic_graphs, tmp_path):
    repo = tmp_path / "repo"
    args = ["--name", "dyn", "--ensemble", "--device", "cpu", "--max-queue-delay-us", "100"]
    r = cli("triton", dynamic_graphs["plugin"], "-o", repo, *args)
    assert r.exit_code == 0, r.output
    configs = all_configs(repo)
    engine, pre, ens = configs["dyn"], configs["dyn_preprocess"], configs["dyn_ensemble"]
    # The graph's --max-batch 4 is every model's max_batch_size; dims leave the batch out.
    assert engine.max_batch_size == pre.max_batch_size == ens.max_batch_size == 4
    assert io_of(engine)["video"] == ("TYPE_FP32", [3, 4, 32, 32])
    assert io_of(pre) == {"video_bytes": ("TYPE_STRING", [1]), "video": io_of(engine)["video"]}
    assert io_of(ens)["video_bytes"] == ("TYPE_STRING", [1])
    assert io_of(ens)["pooled"] == io_of(engine)["pooled"] == ("TYPE_FP32", [64])
    for config in (engine, pre):
        assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert list(engine.model_warmup[0].inputs["video"].dims) == [3, 4, 32, 32]
    r = cli("triton", dynamic_graphs["plugin"], "-o", tmp_path / "r2", "--max-batch-size", "8")
    assert r.exit_code == 2 and not (tmp_path / "r2").exists()  # the graph takes at most 4
