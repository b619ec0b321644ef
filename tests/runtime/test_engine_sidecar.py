"""The X.plan.json sidecar (docs/design.md, "TensorRT"): what it records, and what loading checks."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import Precision
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.runtime.tensorrt import sidecar as sc

SCHEDULE = {
    "spec": "0.25x2",
    "layers": [
        {
            "layer": 0,
            "tokens_in": 64,
            "requested": 0.25,
            "r": 16,
            "tokens_out": 48,
            "clamped": False,
        },
        {
            "layer": 1,
            "tokens_in": 48,
            "requested": 0.25,
            "r": 12,
            "tokens_out": 36,
            "clamped": False,
        },
    ],
}
PLUGIN_SHA = "ab" * 32
ENGINE = b"\x00fake serialized engine\xff" * 10


def make(tmp_path, **overrides) -> sc.EngineSidecar:
    onnx_path = tmp_path / "engine.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    kwargs = dict(
        tensorrt_version="10.3.0",
        cuda_version="12.6",
        gpu_name="NVIDIA A100-SXM4-80GB",
        compute_capability=(8, 0),
        precision="fp16",
        inputs={"video": sc.io_spec((1, 3, 8, 64, 64), "float32")},
        outputs={
            "tokens": sc.io_spec((1, 36, 192), "float32"),
            "pooled": sc.io_spec((1, 192), "float32"),
        },
        schedule=SCHEDULE,
        onnx_path=onnx_path,
        plugin_library=tmp_path / "libvidtldr_plugins.so",
        plugin_library_sha256=PLUGIN_SHA,
        arch="umt-tiny",
        merge_impl="plugin",
        plugin_layers=4,
        engine_sha256=hashlib.sha256(ENGINE).hexdigest(),  # required: the check fails closed
    )
    kwargs.update(overrides)
    return sc.make_sidecar(**kwargs)


def runtime_like(sidecar: sc.EngineSidecar, **overrides) -> dict:
    info = {
        "tensorrt_version": sidecar.tensorrt_version,
        "cuda_version": sidecar.cuda_version,
        "gpu_name": sidecar.gpu_name,
        "compute_capability": sidecar.compute_capability,
        "plugin_library": sidecar.plugin_library,
        "plugin_library_sha256": sidecar.plugin_library_sha256,
        "engine_sha256": sidecar.engine_sha256,
    }
    info.update(overrides)
    return info


def test_make_sidecar_records_every_design_field(tmp_path):
    s = make(tmp_path)
    assert s.tensorrt_version == "10.3.0"
    assert s.cuda_version == "12.6"
    assert s.gpu_name == "NVIDIA A100-SXM4-80GB"
    assert s.compute_capability == "8.0"
    assert s.precision == "fp16"
    assert s.inputs == {"video": {"shape": [1, 3, 8, 64, 64], "dtype": "float32"}}
    assert s.outputs["pooled"] == {"shape": [1, 192], "dtype": "float32"}
    assert s.schedule == SCHEDULE
    assert s.onnx_sha256 == hashlib.sha256(b"onnx bytes").hexdigest()
    assert s.plugin_library_sha256 == PLUGIN_SHA
    assert s.toolkit_version == __version__
    assert s.format == sc.FORMAT and s.format_version == sc.FORMAT_VERSION
    assert json.loads(json.dumps(s.to_dict())) == s.to_dict()  # JSON-clean


@pytest.mark.parametrize(
    "cc, expected",
    [
        ((8, 7), "8.7"),
        ([9, 0], "9.0"),
        ("8.6", "8.6"),
        ("sm_87", "8.7"),
        ("87", "8.7"),
        ("100", "10.0"),
        (None, None),
    ],
)
def test_normalize_capability(cc, expected):
    assert sc.normalize_capability(cc) == expected


def test_sm_name():
    assert sc.sm_name("8.7") == "sm_87"
    assert sc.sm_name("10.0") == "sm_100"


def test_sidecar_path_appends_json(tmp_path):
    assert sc.sidecar_path(tmp_path / "engine.plan") == tmp_path / "engine.plan.json"


def test_round_trip_engine_and_sidecar(tmp_path):
    engine_path = tmp_path / "engine.plan"
    written = sc.write_engine_and_sidecar(engine_path, ENGINE, make(tmp_path))
    assert engine_path.read_bytes() == ENGINE
    assert written.engine_sha256 == hashlib.sha256(ENGINE).hexdigest()
    back = sc.read_sidecar(engine_path)
    assert back == written
    # reading by the .json path works too
    assert sc.read_sidecar(sc.sidecar_path(engine_path)) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "engine.onnx",
        "engine.plan",
        "engine.plan.json",
    ]
    # the file on disk matches what the runner will hash
    assert sc.sha256_file(engine_path) == written.engine_sha256


def test_write_sidecar_alone_round_trips(tmp_path):
    s = make(tmp_path)
    path = sc.write_sidecar(tmp_path / "x.plan", s)
    assert path.name == "x.plan.json"
    assert sc.read_sidecar(tmp_path / "x.plan") == s


def test_matching_runtime_has_no_mismatch(tmp_path):
    s = sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, make(tmp_path))
    assert sc.check_sidecar(s, runtime_like(s)) == []
    sc.require_sidecar_match(s, runtime_like(s), tmp_path / "e.plan")  # does not raise
    # a runtime that knows less is not a mismatch
    assert sc.check_sidecar(s, {}) == []


def test_gpu_mismatch_names_both_devices(tmp_path):
    s = make(tmp_path)
    problems = sc.check_sidecar(s, runtime_like(s, gpu_name="Orin", compute_capability=(8, 7)))
    assert problems == [
        "engine built for NVIDIA A100-SXM4-80GB (sm_80), this GPU is Orin (sm_87): "
        "rebuild the engine on this device"
    ]


def test_same_capability_other_gpu_is_a_mismatch(tmp_path):
    s = make(tmp_path)
    (problem,) = sc.check_sidecar(s, runtime_like(s, gpu_name="NVIDIA A30"))
    assert "NVIDIA A30 (sm_80)" in problem and "rebuild the engine on this device" in problem


def test_tensorrt_version_mismatch(tmp_path):
    s = make(tmp_path)
    (problem,) = sc.check_sidecar(s, runtime_like(s, tensorrt_version="10.7.0"))
    assert "TensorRT 10.3.0" in problem and "TensorRT 10.7.0" in problem and "rebuild" in problem


def test_cuda_major_mismatch_only(tmp_path):
    s = make(tmp_path)
    assert sc.check_sidecar(s, runtime_like(s, cuda_version="12.8")) == []
    (problem,) = sc.check_sidecar(s, runtime_like(s, cuda_version="13.0"))
    assert "CUDA 12.6" in problem and "CUDA 13.0" in problem


def test_plugin_library_hash_mismatch(tmp_path):
    s = make(tmp_path)
    (problem,) = sc.check_sidecar(
        s,
        runtime_like(
            s, plugin_library="/opt/other/libvidtldr_plugins.so", plugin_library_sha256="cd" * 32
        ),
    )
    assert "/opt/other/libvidtldr_plugins.so" in problem
    assert "cdcdcdcdcdcd" in problem and "abababababab" in problem
    assert "rebuild the engine" in problem


def test_plugin_library_missing(tmp_path):
    s = make(tmp_path)
    (problem,) = sc.check_sidecar(
        s, runtime_like(s, plugin_library=None, plugin_library_sha256=None)
    )
    assert "no plugin library was found" in problem and "vidtldr build-plugins" in problem


def test_engine_without_plugins_needs_no_library(tmp_path):
    s = make(
        tmp_path,
        plugin_library=None,
        plugin_library_sha256=None,
        merge_impl="onnx",
        plugin_layers=0,
    )
    assert (
        sc.check_sidecar(s, runtime_like(s, plugin_library=None, plugin_library_sha256=None)) == []
    )


def test_engine_file_replaced(tmp_path):
    s = sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, make(tmp_path))
    (problem,) = sc.check_sidecar(s, runtime_like(s, engine_sha256="00" * 32))
    assert "not the one its sidecar describes" in problem


def test_every_mismatch_is_listed_in_one_error(tmp_path):
    s = sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, make(tmp_path))
    runtime = runtime_like(
        s, gpu_name="Orin", compute_capability="8.7", tensorrt_version="10.7.0",
        cuda_version="13.0", plugin_library_sha256="cd" * 32, engine_sha256="00" * 32,
    )  # fmt: skip
    assert len(sc.check_sidecar(s, runtime)) == 5
    with pytest.raises(VidTLDRError) as err:
        sc.require_sidecar_match(s, runtime, tmp_path / "e.plan")
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'e.plan'} cannot run here:")
    for needle in (
        "this GPU is Orin (sm_87)",
        "TensorRT 10.7.0",
        "CUDA 13.0",
        "plugin library",
        "sidecar describes",
    ):
        assert needle in text
    assert text.count("\n  - ") == 5


def test_missing_sidecar_is_a_clear_error(tmp_path):
    (tmp_path / "e.plan").write_bytes(ENGINE)
    with pytest.raises(VidTLDRError, match=r"e\.plan\.json is missing: an engine never travels"):
        sc.read_sidecar(tmp_path / "e.plan")


@pytest.mark.parametrize("text", ["{not json", "", "\x00\xff"])
def test_corrupt_sidecar_is_a_clear_error(tmp_path, text):
    sc.sidecar_path(tmp_path / "e.plan").write_bytes(text.encode("latin-1"))
    with pytest.raises(VidTLDRError, match="corrupt|not valid JSON"):
        sc.read_sidecar(tmp_path / "e.plan")


def test_foreign_json_is_rejected(tmp_path):
    sc.sidecar_path(tmp_path / "e.plan").write_text(json.dumps({"hello": 1}))
    with pytest.raises(VidTLDRError, match="not a vidtldr engine sidecar"):
        sc.read_sidecar(tmp_path / "e.plan")
    sc.sidecar_path(tmp_path / "e.plan").write_text(json.dumps([1, 2]))
    with pytest.raises(VidTLDRError, match="not a vidtldr engine sidecar"):
        sc.read_sidecar(tmp_path / "e.plan")


def test_incomplete_sidecar_names_missing_keys(tmp_path):
    s = make(tmp_path).to_dict()
    del s["tensorrt_version"], s["plugin_library_sha256"]
    sc.sidecar_path(tmp_path / "e.plan").write_text(json.dumps(s))
    with pytest.raises(VidTLDRError, match="lacks tensorrt_version, plugin_library_sha256"):
        sc.read_sidecar(tmp_path / "e.plan")


def test_newer_format_is_rejected(tmp_path):
    s = make(tmp_path).to_dict()
    s["format_version"] = sc.FORMAT_VERSION + 1
    sc.sidecar_path(tmp_path / "e.plan").write_text(json.dumps(s))
    with pytest.raises(VidTLDRError, match="newer than this toolkit reads"):
        sc.read_sidecar(tmp_path / "e.plan")


def _only_onnx(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_unserialisable_sidecar_writes_nothing(tmp_path):
    bad = make(tmp_path, build={"oops": object()})
    with pytest.raises(TypeError):
        sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, bad)
    assert _only_onnx(tmp_path) == ["engine.onnx"]  # no engine, no sidecar, no temporary files
    with pytest.raises(TypeError):
        sc.write_sidecar(tmp_path / "e.plan", bad)
    assert _only_onnx(tmp_path) == ["engine.onnx"]


def test_failure_while_writing_leaves_neither_file(tmp_path, monkeypatch):
    good = make(tmp_path)

    def broken_write_text(self, *args, **kwargs):  # the sidecar write fails half way
        with open(self, "w") as f:
            f.write('{"format": "vidtldr-eng')
        raise OSError("disk full")

    monkeypatch.setattr(sc.Path, "write_text", broken_write_text)
    with pytest.raises(OSError, match="disk full"):
        sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, good)
    assert _only_onnx(tmp_path) == ["engine.onnx"]


def test_failure_moving_the_engine_removes_the_new_sidecar(tmp_path, monkeypatch):
    good = make(tmp_path)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".plan"):
            raise OSError("cannot move the engine into place")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="cannot move the engine"):
        sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, good)
    assert _only_onnx(tmp_path) == ["engine.onnx"]


def test_failed_rebuild_keeps_the_previous_pair(tmp_path):
    first = sc.write_engine_and_sidecar(tmp_path / "e.plan", ENGINE, make(tmp_path))
    with pytest.raises(TypeError):
        sc.write_engine_and_sidecar(
            tmp_path / "e.plan", b"new engine", make(tmp_path, build={"x": object()})
        )
    assert (tmp_path / "e.plan").read_bytes() == ENGINE
    assert sc.read_sidecar(tmp_path / "e.plan") == first


def test_missing_output_directory(tmp_path):
    with pytest.raises(VidTLDRError, match="does not exist"):
        sc.write_engine_and_sidecar(tmp_path / "nope" / "e.plan", ENGINE, make(tmp_path))


def test_typed_sidecar_keeps_the_json_on_disk(tmp_path):
    """The typed record writes the keys, order and values sidecars have always had, and reading
    then rewriting a sidecar gives the same bytes (unknown keys from a newer writer kept)."""
    engine_path = tmp_path / "engine.plan"
    sc.write_engine_and_sidecar(engine_path, ENGINE, make(tmp_path))
    path = sc.sidecar_path(engine_path)
    data = json.loads(path.read_text())
    assert list(data) == [
        "format", "format_version", "toolkit_version", "created", "tensorrt_version",
        "cuda_version", "gpu_name", "compute_capability", "precision", "inputs", "outputs",
        "batch", "arch", "merge_impl", "schedule", "checkpoint", "checkpoint_sha256", "onnx",
        "onnx_sha256", "plugin_library", "plugin_library_sha256", "plugin_layers",
        "engine_sha256", "build",
    ]  # fmt: skip
    assert data["precision"] == "fp16" and data["compute_capability"] == "8.0"
    assert data["batch"] is None  # a static-batch engine
    data["added_later"] = {"x": 1}
    text = json.dumps(data, indent=2) + "\n"
    path.write_text(text)
    back = sc.read_sidecar(engine_path)
    assert back.precision is Precision.FP16 and back.extra == {"added_later": {"x": 1}}
    sc.write_sidecar(engine_path, back)
    assert path.read_text() == text
    # A sidecar written before the batch range was recorded reads as a static-batch engine.
    del data["batch"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    assert sc.read_sidecar(engine_path).batch is None
