"""`vidtldr triton` on an engine whose sidecar was damaged or edited: every malformed field is
refused before anything is written, as bad input (exit 2) naming the field, never a crash."""

from __future__ import annotations

import json

import pytest
from triton_helpers import leftovers, write_fake_plan

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.runtime.tensorrt import sidecar as sc


def _edit(plan, edit) -> None:
    path = sc.sidecar_path(plan)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _video(**spec):
    return lambda d: d["inputs"].__setitem__("video", spec)


CASES = {
    "inputs-list": (_set("inputs", [[2, 3, 4, 32, 32]]), "inputs"),
    "string-dim": (_video(shape=[2, "3", 4, 32, 32], dtype="float32"), "inputs.video.shape"),
    "negative-dim": (_video(shape=[2, -3, 4, 32, 32], dtype="float32"), "inputs.video.shape"),
    "dims-number": (_video(shape=-5, dtype="float32"), "inputs.video.shape"),
    "no-shape": (_video(dtype="float32"), "inputs.video.shape"),
    "plugin-layers-text": (_set("plugin_layers", "abc"), "plugin_layers"),
    "no-inputs": (_set("inputs", {}), "inputs"),
    "no-outputs": (_set("outputs", {}), "outputs"),
    "tensorrt-version-null": (_set("tensorrt_version", None), "tensorrt_version"),
    "precision-unknown": (_set("precision", "int4"), "precision"),
    "batch-range": (_set("batch", {"min": 1, "opt": 5, "max": 4}), "batch"),
    "batch-text": (_set("batch", "1..4"), "batch"),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_sidecar_field_is_bad_input_naming_it(cli, tmp_path, case):
    edit, field = CASES[case]
    plan = write_fake_plan(tmp_path)
    _edit(plan, edit)
    with pytest.raises(InputError) as err:
        sc.read_sidecar(plan)
    assert f"{field} " in str(err.value)
    r = cli("triton", plan, "-o", tmp_path / "repo")
    assert r.exit_code == InputError.exit_code, r.output
    assert f"{field} " in " ".join(r.output.split()) and "Traceback" not in r.output
    assert not (tmp_path / "repo").exists()
    assert leftovers(tmp_path) == []
