"""Bad input, as a user meets it on the command line: each case is a named error with exit code 2
(never a traceback, never exit 1 or 3), raised before any export work, leaving no file behind."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from support.graphs import graph_with_metadata
from vidtldr_deploy.cli.main import app
from vidtldr_deploy.errors import EXIT_BAD_INPUT

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *needles: str) -> str:
    """Exit 2 with one named message (no internal error), containing every needle."""
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == EXIT_BAD_INPUT, text
    assert "internal error" not in text and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


def only(folder, *names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"just some text\n", "corrupt or not a PyTorch checkpoint"),
        (b"a", "corrupt or not a PyTorch checkpoint"),
        (b"ab", "corrupt or not a PyTorch checkpoint"),
        (b"", "is empty (0 bytes)"),
        (bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)), "corrupt"),
    ],
    ids=["text", "one-byte", "two-bytes", "empty", "random"],
)
def test_damaged_checkpoint_is_named_and_never_steers_to_unsafe_load(tmp_path, content, needle):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(content)
    text = refused(invoke("export", ckpt, "-o", tmp_path / "m.onnx", "-s", "none"), needle)
    assert "--unsafe-load" not in text and "weights_only" not in text
    assert "()" not in text  # a non-empty detail
    only(tmp_path, "m.pt")


def test_unreadable_checkpoint_is_permission_denied_not_corrupt(tmp_path, monkeypatch):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x" * 10)
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path) == str(ckpt):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    text = refused(
        invoke("export", ckpt, "-o", tmp_path / "m.onnx", "-s", "none"), "permission denied"
    )
    assert "corrupt" not in text


def _hf_folder(tmp_path, config: bytes) -> object:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_bytes(config)
    (folder / "model.safetensors").write_bytes(b"never read: config.json is checked first")
    return folder


@pytest.mark.parametrize(
    "config, needle",
    [
        (b"[]", "holds a JSON list, not an object"),
        (b'"videomae"', "holds a JSON str, not an object"),
        (b"\xff\xfe{\x00}\x00", "is not UTF-8"),
        (b'{"num_frames": "four"}', "num_frames must be a positive whole number, got 'four'"),
        (b'{"hidden_size": "big"}', "hidden_size must be a positive whole number, got 'big'"),
        (
            b'{"num_attention_heads": 0}',
            "num_attention_heads must be a positive whole number, got 0",
        ),
        (b'{"num_frames": 0}', "num_frames must be a positive whole number, got 0"),
    ],
    ids=["list", "string", "not-utf8", "frames-four", "hidden-big", "heads-zero", "frames-zero"],
)
def test_bad_hf_config_is_named(tmp_path, config, needle):
    folder = _hf_folder(tmp_path, config)
    refused(invoke("export", folder, "-o", tmp_path / "m.onnx", "-s", "none"), needle)
    assert not (tmp_path / "m.onnx").exists()


# --- numbers: a zero is never replaced by a default ---------------------------------------------


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--frames", "0"], "--frames must be at least 1, got 0"),
        (["--ckpt-frames", "0"], "--ckpt-frames must be at least 1, got 0"),
        (["--ckpt-frames", "-2"], "--ckpt-frames must be at least 1, got -2"),
        (["--batch", "1000000000"], "--batch 1000000000 is larger than any static batch"),
        (["--frames", "20000"], "would need about"),
        (["-s", "1x100000000"], "has 100000000 layers but the model has 4"),
        (["-s", "1" + "0" * 320], "larger than any token count"),
        (["-s", "1" + "0" * 5000 + "x2"], "larger than any token count"),
        (["-s", "1.5x2"], "neither a fraction below 1 nor a whole token count"),
    ],
)
def test_impossible_numbers_are_refused_before_export(tmp_path, flags, needle):
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", *flags), needle)
    only(tmp_path)


def test_infeasible_request_names_the_memory_it_needs(tmp_path):
    text = refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "--frames", "20000"))
    assert "GiB" in text and "VIDTLDR_MEMORY_LIMIT_GIB" in text


def test_profile_batch_zero_is_an_error(tmp_path):
    refused(
        invoke("profile", "demo-random", "--batch", "0", "-n", "1"),
        "--batch must be at least 1, got 0",
    )


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('frames = "4"\n', "--frames must be a whole number, got '4'"),
        ("tolerances = 5\n", "tolerances must be a table of numbers"),
        ("batch = 0\n", "--batch must be at least 1, got 0"),
        ('[tolerances]\nmax_abs = "tiny"\n', "tolerances.max_abs must be a number"),
    ],
)
def test_config_toml_with_wrong_types_is_named(tmp_path, toml, needle):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    refused(
        invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "-c", config), needle, "c.toml"
    )


# --- output paths -------------------------------------------------------------------------------


def test_output_that_is_a_directory(tmp_path):
    (tmp_path / "m.onnx").mkdir()
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx"), "is a directory")


def test_report_that_is_a_directory(tmp_path):
    (tmp_path / "r.json").mkdir()
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "--report", tmp_path / "r.json"),
            "--report", "is a directory")  # fmt: skip
    only(tmp_path, "r.json")


def test_missing_report_folder_names_report_not_o(tmp_path):
    text = refused(
        invoke(
            "export",
            "demo-random",
            "-o",
            tmp_path / "m.onnx",
            "--report",
            tmp_path / "no" / "r.json",
        ),
        "--report",
        "does not exist",
        "mkdir -p",
    )
    assert "-o path" not in text
    only(tmp_path)


def test_report_equal_to_output_is_refused(tmp_path):
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "--report", tmp_path / "m.onnx"),
            "is also -o")  # fmt: skip
    only(tmp_path)


def test_report_md_keeps_the_json_and_its_markdown_apart(tmp_path):
    from vidtldr_deploy.report.io import markdown_path, write_report

    assert markdown_path(tmp_path / "r.json") == tmp_path / "r.md"
    assert markdown_path(tmp_path / "x.md") == tmp_path / "x.md.md"
    json_path, md_path = write_report(tmp_path / "x.md", {"passed": True, "outputs": []})
    assert json.loads(json_path.read_text())["passed"] is True  # not replaced by Markdown
    assert md_path.name == "x.md.md"


def test_missing_inputs_refused_before_export(tmp_path):
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "--inputs", tmp_path / "no.npz"),
            "does not exist")  # fmt: skip
    only(tmp_path)


def test_read_only_folder_is_refused(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode)
    )
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx"), "not writable")


def test_vidtldr_export_help_names_itself():
    from vidtldr_deploy.cli.commands.export import export_app

    result = runner.invoke(export_app, ["--help"], prog_name="vidtldr-export")
    assert result.exit_code == 0
    assert "Usage: vidtldr-export [OPTIONS]" in " ".join(result.output.split())
    assert "vidtldr-export export" not in result.output


# --- clip arrays --------------------------------------------------------------------------------

SHAPE = (1, 3, 4, 32, 32)  # the demo's input


def _npz(tmp_path, write) -> object:
    path = tmp_path / "clips.npz"
    write(path)
    return path


@pytest.mark.parametrize(
    "write, needle",
    [
        (lambda p: np.savez(p), "holds no arrays"),
        (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        (lambda p: (np.savez(p, clips=np.zeros(SHAPE, np.float32)),
                    p.write_bytes(p.read_bytes()[:200])), "not a readable .npz"),
        (lambda p: np.savez(p, clips=np.full(SHAPE, "a")), "not numbers"),
        (lambda p: np.savez(p, clips=np.zeros(SHAPE, np.complex64)), "complex values"),
        (lambda p: np.savez(p, clips=np.stack([np.zeros(SHAPE[1:]), np.full(SHAPE[1:], np.nan)]).astype(np.float32)),
         "NaN or Inf values in clip(s) 1"),
    ],
    ids=["empty-archive", "empty-file", "truncated", "strings", "complex", "nan"],
)  # fmt: skip
def test_bad_clip_arrays_are_named_before_export(tmp_path, write, needle):
    data = tmp_path / "data"
    data.mkdir()
    path = _npz(data, write)
    refused(invoke("export", "demo-random", "-o", tmp_path / "m.onnx", "--inputs", path), needle)
    assert not (tmp_path / "m.onnx").exists()


# --- graphs whose metadata was edited -----------------------------------------------------------


def _graph(tmp_path, **meta) -> object:
    return graph_with_metadata(tmp_path, **meta)


@pytest.mark.parametrize(
    "meta, needle",
    [
        ({"schedule": "{not json"}, "vidtldr.schedule"),
        ({"schedule": json.dumps({"spec": "1x100000000"})}, "has 100000000 layers"),
        ({"frames": "many"}, "vidtldr.frames"),
        ({"frames": "0"}, "vidtldr.frames"),
        ({"frames": "8"}, "vidtldr.frames"),  # disagrees with the input shape
        ({"input_shape": "[1, 3]"}, "vidtldr.input_shape"),
        ({"input_shape": "[1000000000, 3, 4, 32, 32]", "batch": "1000000000"}, "would need about"),
    ],
    ids=["schedule-json", "huge-schedule", "frames-text", "frames-zero", "frames-shape",
         "shape", "huge-batch"],
)  # fmt: skip
def test_tampered_graph_metadata_is_named(tmp_path, meta, needle):
    refused(invoke("validate", _graph(tmp_path, **meta)), needle)


def test_validate_report_equal_to_graph_is_refused(tmp_path):
    graph = _graph(tmp_path)
    refused(invoke("validate", graph, "--report", graph), "is also the graph")


def test_demo_graph_with_unrelated_checkpoint_is_a_mismatch(tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"anything")
    refused(invoke("validate", _graph(tmp_path), "--checkpoint", other), "demo:umt-tiny:seed0")


def test_unsafe_load_never_unpickles_a_file_named_by_the_graph(tmp_path):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"would run code")
    graph = _graph(tmp_path, checkpoint=str(evil), checkpoint_sha256="ab" * 32)
    refused(invoke("validate", graph, "--unsafe-load"), "--checkpoint", "never unpickled")
    refused(
        invoke("profile", graph, "--runtime", "onnxruntime", "--unsafe-load"), "never unpickled"
    )


def test_unsafe_load_checks_the_hash_before_unpickling(tmp_path, monkeypatch):
    import torch

    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"would run code")
    graph = _graph(tmp_path, checkpoint=str(evil), checkpoint_sha256="ab" * 32)
    monkeypatch.setattr(
        torch, "load", lambda *a, **k: pytest.fail("unpickled before the hash check")
    )
    refused(invoke("validate", graph, "--checkpoint", evil, "--unsafe-load"),
            str(evil), "is not the one the graph was exported from")  # fmt: skip
