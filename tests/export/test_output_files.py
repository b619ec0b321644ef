"""Outputs as other tools expect them: normal permissions, a named error on a full disk with
nothing left behind, no hidden temporary file after SIGTERM, and export failures that say why."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidtldr_deploy.errors import InputError, VidTLDRError
from vidtldr_deploy.files import atomic_output, check_distinct_outputs

ROOT = Path(__file__).resolve().parents[2]


def test_new_outputs_get_0666_minus_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.plan") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.plan").stat().st_mode & 0o777 == 0o644


def test_overwriting_keeps_the_mode(tmp_path):
    target = tmp_path / "a.plan"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640


def test_full_disk_is_named_and_leaves_nothing(tmp_path):
    target = tmp_path / "m.onnx"
    with pytest.raises(InputError, match="No space left on device.*nothing was left behind"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_distinct_outputs(tmp_path):
    check_distinct_outputs({"-o": tmp_path / "a.onnx", "--report": tmp_path / "r.json", "x": None})
    with pytest.raises(InputError, match="--report .* is also -o"):
        check_distinct_outputs({"-o": tmp_path / "a.onnx", "--report": tmp_path / "sub/../a.onnx"})


def _demo_export(monkeypatch, failure: BaseException, tmp_path):
    from vidtldr_deploy.export import onnx_export
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.models.source import load_source

    loaded = load_source("demo-random")

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(onnx_export, "_trace", fail)
    spec = ExportSpec("umt-tiny", loaded.frames, 1, loaded.schedule("none"))
    onnx_export.export_onnx(loaded.model, spec, tmp_path / "m.onnx")


def test_export_failure_shows_the_cause_without_escapes(monkeypatch, tmp_path):
    try:
        raise ValueError("\x1b[31mUnsupported op aten::foo\x1b[0m\nmore detail")
    except ValueError as cause:
        wrapper = RuntimeError("\x1b[1mFailed to export the model with torch.export.\x1b[0m")
        wrapper.__cause__ = cause
    with pytest.raises(VidTLDRError) as info:
        _demo_export(monkeypatch, wrapper, tmp_path)
    text = str(info.value)
    assert "\x1b" not in text
    assert "Failed to export" in text and "ValueError: Unsupported op aten::foo" in text
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_inside_the_exporter_is_an_interruption(monkeypatch, tmp_path):
    wrapped = RuntimeError("export failed")
    wrapped.__context__ = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        _demo_export(monkeypatch, wrapped, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _demo_export(monkeypatch, KeyboardInterrupt(), tmp_path)


SLOW_SAVE = textwrap.dedent(
    """
    import sys, time, onnx
    def slow_save(proto, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a graph")
        print("SAVING", flush=True)
        time.sleep(120)
    onnx.save = slow_save
    sys.argv = ["vidtldr", "export", "demo-random", "-o", sys.argv[1], "--no-validate"]
    from vidtldr_deploy.cli.main import main
    main()
    """
)


def test_sigterm_during_save_leaves_no_temporary_file(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(tmp_path / "m.onnx")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if "SAVING" in line:
                break
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.onnx.")]  # mid-save
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []
