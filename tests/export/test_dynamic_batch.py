"""--max-batch N: the batch dimension is dynamic (1..N), every token count stays static per clip,
and a clip's outputs do not depend on the batch it runs in."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from vidtldr_deploy.export.metadata import read_metadata


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_batch_is_dynamic_and_tokens_static(dynamic_graphs, impl):
    model = onnx.load(str(dynamic_graphs[impl]))
    (video,) = model.graph.input
    assert _dims(video)[0] == "batch" and all(isinstance(d, int) for d in _dims(video)[1:])
    for out in model.graph.output:  # tokens (B, 36, C), pooled (B, C): only the batch is named
        dims = _dims(out)
        assert dims[0] == "batch" and all(isinstance(d, int) and d > 0 for d in dims[1:])
    meta = read_metadata(model)
    assert meta["max_batch"] == "4" and meta["batch"] == "4"


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_a_clip_gives_the_same_outputs_in_any_batch(dynamic_graphs, impl):
    session = ort.InferenceSession(str(dynamic_graphs[impl]), providers=["CPUExecutionProvider"])
    clips = np.random.default_rng(0).standard_normal((3, 3, 4, 32, 32), dtype=np.float32)
    together = session.run(None, {"video": clips})
    alone = [session.run(None, {"video": clips[i : i + 1]}) for i in range(3)]
    for k, out in enumerate(together):
        assert out.shape[0] == 3
        np.testing.assert_allclose(out, np.concatenate([a[k] for a in alone]), atol=1e-5, rtol=0)


def test_static_exports_keep_a_static_batch(demo_graphs):
    model = onnx.load(str(demo_graphs["onnx"]))
    assert _dims(model.graph.input[0])[0] == 1 and read_metadata(model)["max_batch"] == ""


def test_max_batch_is_checked_before_any_work(cli, tmp_path):
    r = cli("export", "demo-random", "-o", tmp_path / "m.onnx", "--max-batch", "1")
    assert r.exit_code == 2 and not (tmp_path / "m.onnx").exists()
    r = cli("export", "demo-random", "-o", tmp_path / "m.onnx", "--max-batch", "4", "--batch", "2")
    assert r.exit_code == 2
    for args in (
        ["-o", tmp_path / "m.plan", "--max-batch", "4", "--opt-batch", "5"],  # opt beyond max
        ["-o", tmp_path / "m.plan", "--max-batch", "4", "--opt-batch", "0"],
        ["-o", tmp_path / "m.plan", "--opt-batch", "2"],  # no --max-batch
        ["-o", tmp_path / "m.onnx", "--max-batch", "4", "--opt-batch", "2"],  # no engine
        # INT8 calibration and validation take one static input shape
        ["-o", tmp_path / "m.onnx", "--max-batch", "4", "--precision", "int8"],
    ):
        r = cli("export", "demo-random", *args)
        assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
        assert not list(tmp_path.iterdir())
        assert "loading demo-random" not in r.output  # refused before any work
