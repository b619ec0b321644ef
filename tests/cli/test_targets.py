"""One way in (docs/design.md, "Targets"): every command resolves its target the same way, so an
engine, a graph or a checkpoint is refused the same way, before any runtime is imported, and each
failure carries its kind (its exit code), whichever command meets it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from support.graphs import graph_with_metadata
from vidtldr_deploy.errors import InputError, RuntimeFailure
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.validate.tolerances import DEFAULT_TOLERANCES


def _error(result) -> str:
    """The one error message, whitespace joined (the console wraps at 80 columns)."""
    text = " ".join(result.output.split())
    assert "error:" in text and "Traceback" not in text, text
    return text[text.index("error:") :]


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.npy"
    np.save(path, np.random.default_rng(0).standard_normal((2, 3, 4, 32, 32)).astype(np.float32))
    return path


@pytest.fixture
def engine(tmp_path, demo_graphs):
    """A .plan (bytes no TensorRT could load) with its sidecar and the graph it records beside it."""
    graph = tmp_path / "e.onnx"
    shutil.copy(demo_graphs["onnx"], graph)
    sidecar = sc.make_sidecar(
        tensorrt_version="10.7.0", cuda_version="12.6", gpu_name="GPU", compute_capability="9.0",
        precision="fp32", inputs={"video": sc.io_spec((1, 3, 4, 32, 32), "float32")},
        outputs={"pooled": sc.io_spec((1, 64), "float32")}, schedule=None, onnx_path=graph,
    )  # fmt: skip
    path = tmp_path / "e.plan"
    sc.write_engine_and_sidecar(path, b"engine bytes", sidecar)
    return path


def _engine_refusals(cli, engine, clip) -> list:
    return [
        cli("validate", engine),
        cli("profile", engine, "--runtime", "tensorrt", "--device", "cuda"),
        cli("evaluate", engine, "--clips", clip),
    ]


def test_an_engine_whose_graph_was_swapped_is_refused_word_for_word(cli, engine, clip):
    other = onnx.load(str(engine.with_suffix(".onnx")))
    other.doc_string = "another graph"
    onnx.save(other, str(engine.with_suffix(".onnx")))
    results = _engine_refusals(cli, engine, clip)
    assert [r.exit_code for r in results] == [InputError.exit_code] * 3
    messages = {_error(r) for r in results}
    assert len(messages) == 1, messages
    assert "e.onnx" in messages.pop()


def test_an_engine_without_its_graph_is_refused_word_for_word(cli, engine, clip):
    engine.with_suffix(".onnx").unlink()
    results = _engine_refusals(cli, engine, clip)
    assert [r.exit_code for r in results] == [InputError.exit_code] * 3
    assert len({_error(r) for r in results}) == 1


def test_an_onnx_runtime_failure_is_a_runtime_failure_not_bad_input(cli, tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [7])  # 49152 values cannot be 7
    node = helper.make_node("Reshape", ["video", "shape"], ["pooled"])
    graph = graph_with_metadata(tmp_path, node, [shape])
    result = cli("validate", graph)
    assert result.exit_code == RuntimeFailure.exit_code != InputError.exit_code
    assert "ONNX Runtime" in _error(result)


def test_validate_checks_an_int8_graph_as_int8(cli, tmp_path):
    graph, report = tmp_path / "q.onnx", tmp_path / "r.json"
    exported = cli("export", "demo-random", "-o", graph, "--precision", "int8", "--no-validate")
    assert exported.exit_code == 0, exported.output
    result = cli("validate", graph, "--report", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["precision"] == "int8"
    assert data["tolerances"] == DEFAULT_TOLERANCES["int8"].to_dict()
    assert 0.0 <= data["merge_decisions"]["agreement"] <= 1.0
    assert data["merge_decisions"]["layers"]


def test_fp16_is_refused_for_an_onnx_output(cli, tmp_path):
    result = cli("export", "demo-random", "--precision", "fp16", "-o", tmp_path / "m.onnx")
    assert result.exit_code == InputError.exit_code
    assert "fp16" in _error(result) and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("broken", ["missing", "corrupt"])
@pytest.mark.parametrize("command", ["export", "profile"])
def test_a_broken_checkpoint_is_named_before_the_schedule_is_asked_for(
    cli, tmp_path, broken, command
):
    ckpt = tmp_path / "model.pth"
    if broken == "corrupt":
        ckpt.write_bytes(b"not a checkpoint")
    args = ["-o", tmp_path / "m.onnx"] if command == "export" else []
    result = cli(command, ckpt, *args)
    assert result.exit_code == InputError.exit_code
    message = _error(result)
    assert str(ckpt) in message and "--schedule" not in message


def test_tune_on_a_graph_tunes_the_model_it_records(cli, tmp_path, demo_graphs, clip):
    report = tmp_path / "t.json"
    result = cli("tune", demo_graphs["onnx"], "--clips", clip, "--target-flops", "0.8",
                 "--report", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["flops"]["ratio"] <= 0.8 and data["arch"] == "umt-tiny"


def test_tune_on_a_graph_without_its_checkpoint_says_tune_needs_it(cli, tmp_path, clip):
    gone = tmp_path / "gone.pth"
    graph = graph_with_metadata(tmp_path, checkpoint=str(gone), checkpoint_sha256="ab" * 32)
    result = cli("tune", graph, "--clips", clip, "--target-flops", "0.6")
    assert result.exit_code == InputError.exit_code
    message = _error(result)
    assert str(gone) in message and "corrupt" not in message


@pytest.fixture(scope="module")
def small_videomae(tmp_path_factory):
    """A 112-px, 6-layer VideoMAE folder: not the registered videomae-b's size."""
    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=112, patch_size=16, num_frames=8, tubelet_size=2, hidden_size=96,
        num_hidden_layers=6, num_attention_heads=3, intermediate_size=384,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("hf") / "small-videomae"
    transformers.VideoMAEModel(config).save_pretrained(folder)
    return folder


def test_schedule_of_a_model_folder_counts_its_own_flops(cli, small_videomae):
    from vidtldr_deploy.core.flops import count_flops
    from vidtldr_deploy.models.source import load_source

    def ratio(arch):
        result = cli("schedule", "--arch", arch, "--frames", "8", "-s", "0.2x6", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    folder, registered = ratio(small_videomae), ratio("videomae-b")
    loaded = load_source(str(small_videomae), frames=8)
    want = count_flops(loaded.model.cfg, 8, loaded.schedule("0.2x6"))
    assert len(folder["layers"]) == 6 and len(registered["layers"]) == 12
    assert folder["flops"]["ratio"] == pytest.approx(want.ratio)
    assert folder["flops"]["ratio"] != pytest.approx(registered["flops"]["ratio"], abs=0.05)
    assert "videomae (96 wide, 6 layers" in folder["arch"]
