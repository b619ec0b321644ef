"""vidtldr triton: repositories from exported graphs and (fake) engines, read back through Triton's
own model configuration schema."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from triton_helpers import BATCH, all_configs, io_of, leftovers, read_config, write_fake_plan

pytest.importorskip("tritonclient.grpc")

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.metadata import read_metadata
from vidtldr_deploy.files import sha256_file
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.serve import triton as tr
from vidtldr_deploy.serve import triton_config as tc


def _graph_io(path) -> dict[str, tuple[str, list[int]]]:
    model = onnx.load(str(path))
    result = {}
    for v in list(model.graph.input) + list(model.graph.output):
        t = v.type.tensor_type
        dtype = tc.triton_dtype_from_onnx(onnx.TensorProto.DataType.Name(t.elem_type))
        result[v.name] = (dtype, [d.dim_value for d in t.shape.dim])
    return result


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_onnx_repository_matches_graph(cli, exported, tmp_path, impl):
    repo = tmp_path / "repo"
    r = cli("triton", exported[impl], "-o", repo, "--name", "clip_model", "--instances", "2")
    assert r.exit_code == 0, r.output
    config = read_config(repo, "clip_model")
    assert config.name == "clip_model" and config.platform == "onnxruntime_onnx"
    # Static batch: max_batch_size 0, the batch is part of every dims, no dynamic batcher.
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert io_of(config) == _graph_io(exported[impl])
    assert io_of(config)["video"] == ("TYPE_FP32", [BATCH, 3, 4, 32, 32])
    (group,) = config.instance_group
    assert group.count == 2 and group.kind == group.KIND_GPU
    (warm,) = config.model_warmup
    assert warm.batch_size == 1 and list(warm.inputs["video"].dims) == [BATCH, 3, 4, 32, 32]
    assert warm.inputs["video"].random_data
    meta = read_metadata(onnx.load(str(exported[impl])))
    params = tc.config_parameters(config)
    assert params["vidtldr.schedule"] == meta["schedule"]
    assert params["vidtldr.merge_impl"] == impl
    assert params["vidtldr.toolkit_version"] == meta["version"]
    assert params["vidtldr.checkpoint_sha256"] == "cd" * 32
    assert params["vidtldr.onnx_sha256"] == sha256_file(exported[impl])
    assert (repo / "clip_model" / "1" / "model.onnx").read_bytes() == exported[impl].read_bytes()
    assert not (repo / tr.PLUGIN_FILENAME).exists()  # ONNX Runtime needs no plugin library
    manifest = json.loads((repo / "vidtldr.json").read_text())
    assert manifest["format"] == tr.REPO_FORMAT and manifest["plugin_library"] is None
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_served_graph_runs_like_export_in_onnxruntime(cli, exported, tmp_path, impl):
    """The plugin form too: ONNX Runtime (Triton's onnxruntime backend) runs the vidtldr local
    functions in place of the custom nodes, so no plugin library is involved."""
    repo = tmp_path / "repo"
    assert cli("triton", exported[impl], "-o", repo, "--device", "cpu").exit_code == 0
    name = f"demo_{impl}"
    assert (
        read_config(repo, name).instance_group[0].kind
        == tc.model_config_pb2().ModelInstanceGroup.KIND_CPU
    )
    clip = np.random.default_rng(0).standard_normal((BATCH, 3, 4, 32, 32)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1

    def run(path):
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return session.run(None, {"video": clip})

    served, original = run(repo / name / "1" / "model.onnx"), run(exported[impl])
    for a, b in zip(served, original):
        np.testing.assert_array_equal(a, b)
    if impl == "plugin":
        model = onnx.load(str(repo / name / "1" / "model.onnx"))
        assert any(n.domain == "vidtldr" for n in model.graph.node)


def test_several_targets_make_several_models(cli, exported, tmp_path):
    repo = tmp_path / "repo"
    r = cli("triton", exported["onnx"], exported["plugin"], "-o", repo)
    assert r.exit_code == 0, r.output
    configs = all_configs(repo)
    assert set(configs) == {"demo_onnx", "demo_plugin"}
    for name, config in configs.items():
        assert config.name == name and io_of(config) == _graph_io(exported[name.split("_")[1]])
    manifest = json.loads((repo / "vidtldr.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["demo_onnx", "demo_plugin"]


def test_plan_repository_from_sidecar(cli, tmp_path, no_default_plugins):
    plan = write_fake_plan(tmp_path)
    repo = tmp_path / "repo"
    r = cli("triton", plan, "-o", repo, "--instances", "3")
    assert r.exit_code == 0, r.output
    config = read_config(repo, "engine")
    sidecar = sc.read_sidecar(plan)
    assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
    assert config.max_batch_size == 0
    want = {n: ("TYPE_FP32", s["shape"]) for n, s in {**sidecar.inputs, **sidecar.outputs}.items()}
    assert io_of(config) == want
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    assert config.instance_group[0].count == 3
    params = tc.config_parameters(config)
    assert params["vidtldr.tensorrt_version"] == "10.7.0"
    assert params["vidtldr.engine_sha256"] == sidecar.engine_sha256
    assert params["vidtldr.precision"] == "fp16"
    assert (repo / "engine" / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert json.loads((repo / "vidtldr.json").read_text())["tensorrt_version"] == "10.7.0"


def test_plan_with_plugin_layers_copies_the_library(cli, tmp_path, fake_plugin, no_default_plugins):
    plan = write_fake_plan(tmp_path, "umt", plugin=fake_plugin)
    repo = tmp_path / "repo"
    r = cli("triton", plan, "-o", repo, "--plugins", fake_plugin)
    assert r.exit_code == 0, r.output
    lib = repo / tr.PLUGIN_FILENAME  # a file at the top: every subfolder would be a model
    assert lib.read_bytes() == fake_plugin.read_bytes()
    manifest = json.loads((repo / "vidtldr.json").read_text())
    plugin = manifest["plugin_library"]
    assert plugin["built_for_tensorrt"] == "10.7.0" and plugin["sha256"] == sha256_file(fake_plugin)
    readme = (repo / "README.md").read_text()
    assert "LD_PRELOAD=/models/libvidtldr_plugins.so" in readme
    assert "--backend-config=tensorrt,plugins=/models/libvidtldr_plugins.so" in readme
    assert set(all_configs(repo)) == {"umt"}


def test_plugin_from_the_environment_folder(cli, tmp_path, fake_plugin, monkeypatch):
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(fake_plugin.parent))
    plan = write_fake_plan(tmp_path, "umt", plugin=fake_plugin)
    assert cli("triton", plan, "-o", tmp_path / "repo").exit_code == 0
    assert (tmp_path / "repo" / tr.PLUGIN_FILENAME).is_file()


def test_dynamic_batch_graph_gets_a_dynamic_batcher(cli, tmp_path):
    """Only a graph whose first dimension is dynamic can be batched by Triton."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, ["batch", 3, 4, 8, 8])
    y = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 3, 4, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["video"], ["pooled"])], "g", [x], [y])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    repo = tmp_path / "repo"
    r = cli("triton", path, "-o", repo, "--max-queue-delay-us", "500", "--max-batch-size", "4")
    assert r.exit_code == 0, r.output
    config = read_config(repo, "dyn")
    assert config.max_batch_size == 4
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert io_of(config) == {
        "video": ("TYPE_FP32", [3, 4, 8, 8]),
        "pooled": ("TYPE_FP32", [3, 4, 8, 8]),
    }
    assert list(config.model_warmup[0].inputs["video"].dims) == [3, 4, 8, 8]


def test_dynamic_batch_plan_gets_a_dynamic_batcher(cli, tmp_path, no_default_plugins):
    """A plan built from a --max-batch graph: the same batching as the ONNX graph it came from."""
    plan = write_fake_plan(tmp_path, "dyn", batch=sc.BatchProfile(1, 2, 6))
    repo = tmp_path / "repo"
    r = cli("triton", plan, "-o", repo, "--max-queue-delay-us", "300")
    assert r.exit_code == 0, r.output
    config = read_config(repo, "dyn")
    assert config.max_batch_size == 6  # the engine's max, not the default 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 300
    assert io_of(config) == {
        "video": ("TYPE_FP32", [3, 4, 32, 32]),
        "tokens": ("TYPE_FP32", [36, 64]),
        "pooled": ("TYPE_FP32", [64]),
    }
    assert list(config.model_warmup[0].inputs["video"].dims) == [3, 4, 32, 32]
    assert tc.config_parameters(config)["vidtldr.max_batch"] == "6"
    r = cli("triton", plan, "-o", tmp_path / "too_big", "--max-batch-size", "7")
    assert r.exit_code == 2 and not (tmp_path / "too_big").exists(), r.output
    static = write_fake_plan(tmp_path, "static")  # unchanged: full shape, no batcher
    assert cli("triton", static, "-o", tmp_path / "s").exit_code == 0
    assert read_config(tmp_path / "s", "static").max_batch_size == 0


def test_force_replaces_the_repository(cli, exported, tmp_path):
    repo = tmp_path / "repo"
    assert cli("triton", exported["plugin"], "-o", repo).exit_code == 0
    (repo / "stale_model").mkdir()
    r = cli("triton", exported["onnx"], "-o", repo, "--force")
    assert r.exit_code == 0, r.output
    assert set(all_configs(repo)) == {"demo_onnx"} and not (repo / "stale_model").exists()
    assert leftovers(tmp_path) == []


def test_existing_empty_folder_is_used(cli, exported, tmp_path):
    (tmp_path / "repo").mkdir()
    assert cli("triton", exported["onnx"], "-o", tmp_path / "repo").exit_code == 0


def _fails(cli, tmp_path, *args, match: str):
    r = cli("triton", *args)
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and match in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())
    assert leftovers(tmp_path) == []
    return r


def test_plan_without_sidecar(cli, tmp_path):
    plan = write_fake_plan(tmp_path)
    sc.sidecar_path(plan).unlink()
    _fails(cli, tmp_path, plan, "-o", tmp_path / "repo", match="needs its sidecar")


def test_plan_replaced_without_its_sidecar(cli, tmp_path):
    plan = write_fake_plan(tmp_path)
    plan.write_bytes(b"another engine")
    _fails(cli, tmp_path, plan, "-o", tmp_path / "repo", match="not the one its sidecar describes")


def test_plan_needing_plugin_without_library(cli, tmp_path, fake_plugin, no_default_plugins):
    plan = write_fake_plan(tmp_path, "umt", plugin=fake_plugin)
    _fails(cli, tmp_path, plan, "-o", tmp_path / "repo", match="vidtldr build-plugins")


def test_plan_with_another_plugin_library(cli, tmp_path, fake_plugin, no_default_plugins):
    plan = write_fake_plan(tmp_path, "umt", plugin=fake_plugin)
    other = tmp_path / "libvidtldr_plugins.so"
    other.write_bytes(fake_plugin.read_bytes() + b"another build")
    _fails(cli, tmp_path, plan, "-o", tmp_path / "repo", "--plugins", other,
           match="is not the one")  # fmt: skip


@pytest.mark.parametrize(
    "name", ["my model", "..", ".hidden", "123", "a/b", "-x", "x" * 129, "café"]
)
def test_names_triton_cannot_take(cli, exported, tmp_path, name):
    _fails(cli, tmp_path, exported["onnx"], "-o", tmp_path / "repo", "--name", name,
           match="is not accepted")  # fmt: skip


def test_non_empty_repository_without_force(cli, exported, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("mine")
    r = cli("triton", exported["onnx"], "-o", repo)
    assert r.exit_code == 2 and "--force" in r.output
    assert [p.name for p in repo.iterdir()] == ["keep.txt"] and leftovers(tmp_path) == []


def test_duplicate_model_names(cli, exported, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / exported["onnx"].name
    twin.write_bytes(exported["onnx"].read_bytes())
    _fails(cli, tmp_path, exported["onnx"], twin, "-o", tmp_path / "repo",
           match="two targets make the model name 'demo_onnx'")  # fmt: skip


def test_ensemble_names_collide_with_models(cli, exported, tmp_path):
    clash = tmp_path / "demo_onnx_preprocess.onnx"
    clash.write_bytes(exported["onnx"].read_bytes())
    _fails(cli, tmp_path, exported["onnx"], clash, "-o", tmp_path / "repo", "--ensemble",
           match="two targets make the model name 'demo_onnx_preprocess'")  # fmt: skip


def test_name_with_several_targets(cli, exported, tmp_path):
    _fails(cli, tmp_path, exported["onnx"], exported["plugin"], "-o", tmp_path / "repo",
           "--name", "x", match="--name names one model")  # fmt: skip


def test_queue_delay_on_a_static_batch(cli, exported, tmp_path):
    _fails(cli, tmp_path, exported["onnx"], "-o", tmp_path / "repo", "--max-queue-delay-us", "100",
           match="static batch of 2")  # fmt: skip


def test_plan_on_cpu(cli, tmp_path):
    plan = write_fake_plan(tmp_path)
    _fails(cli, tmp_path, plan, "-o", tmp_path / "repo", "--device", "cpu", match="GPU only")


def test_bad_targets(cli, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    _fails(
        cli, tmp_path, tmp_path / "model.pt", "-o", tmp_path / "repo", match="expected an engine"
    )
    _fails(cli, tmp_path, tmp_path / "nope.onnx", "-o", tmp_path / "repo", match="does not exist")
    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    _fails(
        cli, tmp_path, tmp_path / "broken.onnx", "-o", tmp_path / "repo", match="not an ONNX model"
    )


def test_failure_mid_build_leaves_nothing(exported, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    tr.build_repository([exported["plugin"]], repo)
    (repo / "old").mkdir()
    before = sorted(p.name for p in repo.iterdir())

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tr, "_readme", boom)  # after the models are written, before the rename
    with pytest.raises(RuntimeError):
        tr.build_repository([exported["onnx"]], repo, tr.RepositoryOptions(force=True))
    assert sorted(p.name for p in repo.iterdir()) == before and leftovers(tmp_path) == []


def test_model_name_rules():
    for ok in ("umt_b16", "UMT-B16.fp16", "_x", "model1", "a" * 128):
        assert tc.check_model_name(ok) == ok
    assert tc.name_from_stem("umt b16 (msrvtt)") == "umt_b16__msrvtt_"
    assert tc.name_from_stem("2024") == "m_2024"
    with pytest.raises(VidTLDRError):
        tc.check_model_name("")


@pytest.mark.parametrize("form", ["trt", "trt-ep"])
def test_graph_forms_without_local_functions_are_refused(cli, form, tmp_path):
    """Triton's ONNX Runtime backend cannot run vidtldr nodes without their local functions."""
    from vidtldr_deploy.export.metadata import ExportSpec, GraphFormError
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source
    from vidtldr_deploy.serve.triton import build_repository

    loaded = load_source("demo-random")
    spec = ExportSpec(
        loaded.arch, loaded.frames, BATCH, loaded.schedule("0.25x2"), "plugin", graph_form=form
    )
    graph = tmp_path / f"demo_{form}.onnx"
    export_onnx(loaded.model, spec, graph)
    with pytest.raises(GraphFormError):
        build_repository([graph], tmp_path / "repo")
    r = cli("triton", graph, "-o", tmp_path / "repo")
    assert r.exit_code == 2 and not (tmp_path / "repo").exists()
