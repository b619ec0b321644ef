"""The engine sidecar check fails closed: what it cannot vouch for is a problem, never a pass."""

from __future__ import annotations

import hashlib
import json

import pytest

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.runtime.tensorrt import sidecar as sc

ENGINE = b"engine bytes"


def _sidecar(tmp_path, **overrides) -> sc.EngineSidecar:
    onnx_path = tmp_path / "e.onnx"
    onnx_path.write_bytes(b"graph")
    kwargs = dict(
        tensorrt_version="10.3.0", cuda_version="12.6", gpu_name="GPU", compute_capability="8.0",
        precision="fp32", inputs={"video": sc.io_spec((1, 3, 4, 32, 32), "float32")},
        outputs={"pooled": sc.io_spec((1, 64), "float32")}, schedule=None, onnx_path=onnx_path,
        engine_sha256=hashlib.sha256(ENGINE).hexdigest(),
    )  # fmt: skip
    kwargs.update(overrides)
    return sc.make_sidecar(**kwargs)


def _written(tmp_path, data) -> object:
    engine = tmp_path / "e.plan"
    engine.write_bytes(ENGINE)
    sc.sidecar_path(engine).write_text(
        json.dumps(data if isinstance(data, dict) else data.to_dict())
    )
    return engine


def test_engine_sha256_is_required(tmp_path):
    s = _sidecar(tmp_path, engine_sha256=None)
    problems = sc.check_sidecar(s, {"engine_sha256": hashlib.sha256(ENGINE).hexdigest()})
    assert any("records no engine_sha256" in p for p in problems)
    data = s.to_dict()
    del data["engine_sha256"]
    with pytest.raises(VidTLDRError, match="lacks engine_sha256"):
        sc.read_sidecar(_written(tmp_path, data))


def test_blank_on_both_sides_fails(tmp_path):
    s = _sidecar(tmp_path, tensorrt_version="", compute_capability=None)
    problems = sc.check_sidecar(s, {"engine_sha256": s.engine_sha256, "tensorrt_version": "",
                                    "compute_capability": None})  # fmt: skip
    assert any("TensorRT versions cannot be compared" in p for p in problems)
    assert any("GPU cannot be compared" in p for p in problems)


def test_graph_beside_the_engine_is_compared(tmp_path):
    s = _sidecar(tmp_path)
    engine = _written(tmp_path, s)
    sc.require_graph_match(engine, tmp_path / "e.onnx")  # the graph it was built from
    (tmp_path / "e.onnx").write_bytes(b"another graph")
    with pytest.raises(VidTLDRError, match="is not the graph the engine was built from"):
        sc.require_graph_match(engine, tmp_path / "e.onnx")


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("compute_capability", "eight", "compute_capability 'eight'"),
        ("compute_capability", [8], "compute_capability"),
        ("format_version", "one", "format_version 'one'"),
        ("format_version", None, "format_version None"),
    ],
)
def test_malformed_fields_are_named(tmp_path, key, value, needle):
    s = _sidecar(tmp_path).to_dict()
    s[key] = value
    with pytest.raises(VidTLDRError, match=needle):
        sc.read_sidecar(_written(tmp_path, s))


def test_directory_as_sidecar_is_named(tmp_path):
    engine = tmp_path / "e.plan"
    engine.write_bytes(ENGINE)
    sc.sidecar_path(engine).mkdir()
    with pytest.raises(VidTLDRError, match="is a directory"):
        sc.read_sidecar(engine)


def test_failed_engine_move_keeps_the_old_sidecar(tmp_path, monkeypatch):
    engine = tmp_path / "e.plan"
    old = sc.write_engine_and_sidecar(engine, b"old engine", _sidecar(tmp_path))
    real_replace = __import__("os").replace

    def fail_engine(src, dst):
        if str(dst) == str(engine):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr("os.replace", fail_engine)
    with pytest.raises((OSError, VidTLDRError)):
        sc.write_engine_and_sidecar(engine, b"new engine", _sidecar(tmp_path))
    assert engine.read_bytes() == b"old engine"
    assert sc.read_sidecar(engine).engine_sha256 == old.engine_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.onnx", "e.plan", "e.plan.json"]
