"""Hostile input to `vidtldr triton` and `vidtldr triton-client`: --force never deletes what the
user owns, disk and permission failures are named, bad flags and files are exit 2, a server that
trickles bytes meets --timeout, and the preprocessing model refuses oversize requests and stays up."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from triton_helpers import BATCH, all_configs, leftovers

pytest.importorskip("tritonclient.http")

from vidtldr_deploy.serve import triton as tr


def _one_line(result) -> str:
    return " ".join(result.output.split())


def _refused(result, match: str) -> None:
    assert result.exit_code == 2, result.output
    assert match in _one_line(result) and "Traceback" not in result.output


# --- --force -----------------------------------------------------------------------------------


def test_force_never_replaces_the_folder_holding_the_target(cli, exported, tmp_path):
    """The issue's case: the graph and the user's notes in s/src, and `-o s/src --force`."""
    src = tmp_path / "s" / "src"
    src.mkdir(parents=True)
    graph = src / "demo.onnx"
    shutil.copyfile(exported["onnx"], graph)
    (src / "notes.txt").write_text("mine\n")
    _refused(cli("triton", graph, "-o", src, "--force"), "holds the TARGET")
    assert sorted(p.name for p in src.iterdir()) == ["demo.onnx", "notes.txt"]
    assert leftovers(tmp_path / "s") == []


def test_force_never_replaces_a_folder_this_toolkit_did_not_write(cli, exported, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    _refused(cli("triton", exported["onnx"], "-o", mine, "--force"), "not a repository")
    assert (mine / "thesis.tex").read_text() == "years of work\n"
    # A vidtldr.json that is not a repository manifest does not count either.
    (mine / "vidtldr.json").write_text(json.dumps({"format": "something else"}))
    _refused(cli("triton", exported["onnx"], "-o", mine, "--force"), "not a repository")
    assert (mine / "thesis.tex").is_file() and leftovers(tmp_path) == []


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_the_working_folder_and_above_are_refused(cli, exported, tmp_path, monkeypatch, out):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    _refused(cli("triton", exported["onnx"], "-o", out, "--force"), "working folder")
    assert (work / "keep.txt").is_file()
    assert leftovers(work) == [] and leftovers(tmp_path) == []


# --- disk and permission failures ---------------------------------------------------------------


def test_read_only_parent_is_named(cli, exported, tmp_path, monkeypatch):
    """As root the permission bits do not stop a write, so the failure is injected where the
    temporary repository is made: the errno a read-only mount gives."""

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    _refused(cli("triton", exported["onnx"], "-o", tmp_path / "repo"), "read-only")
    assert not (tmp_path / "repo").exists()


def test_full_disk_is_named_and_leaves_nothing(cli, exported, tmp_path, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full)
    _refused(cli("triton", exported["onnx"], "-o", tmp_path / "repo"), "No space left")
    assert not (tmp_path / "repo").exists() and leftovers(tmp_path) == []


# --- flags -------------------------------------------------------------------------------------


def test_absurd_instances_are_refused(cli, exported, tmp_path):
    for n in ("99999999999", "0", "-1"):
        _refused(cli("triton", exported["onnx"], "-o", tmp_path / "repo", "--instances", n),
                 "--instances must be 1 to")  # fmt: skip
    assert not (tmp_path / "repo").exists()


def test_plugins_must_be_an_elf_shared_object(cli, exported, tmp_path, fake_plugin):
    text = tmp_path / "libvidtldr_plugins.so"
    text.write_text("#!/bin/sh\n")
    executable = tmp_path / "exe.so"  # ELF, but ET_EXEC
    executable.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little"))
    for bad in (text, executable):
        _refused(cli("triton", exported["onnx"], "-o", tmp_path / "repo", "--plugins", bad),
                 "not an ELF shared object")  # fmt: skip
    assert tr.check_shared_object(fake_plugin) == fake_plugin


def test_repository_folder_follows_the_umask(cli, exported, tmp_path):
    old = os.umask(0o027)
    try:
        assert cli("triton", exported["onnx"], "-o", tmp_path / "repo").exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "repo").stat().st_mode & 0o777 == 0o750


# --- triton-client inputs ----------------------------------------------------------------------


def test_client_video_and_inputs_files_are_checked(cli, tmp_path):
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    os.mkfifo(tmp_path / "pipe.mp4")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "good.npy", np.ones((2, 3, 4, 8, 8), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:100])
    cases = [
        (("--video", tmp_path / "missing.mp4"), "does not exist"),
        (("--video", folder), "is a folder"),
        (("--video", tmp_path / "pipe.mp4"), "FIFO"),
        (("--inputs", tmp_path / "objects.npy"), "Python objects"),
        (("--inputs", tmp_path / "empty.npz"), "empty"),
        (("--inputs", tmp_path / "cut.npy"), "not a readable"),
        (("--inputs", tmp_path / "good.npy", "--timeout", "inf"), "--timeout"),
    ]
    for args, match in cases:
        # no server at this port: every case must be refused before a connection is tried
        _refused(cli("triton-client", "umt", *args, "-u", "127.0.0.1:9"), match)


class _Trickle(BaseHTTPRequestHandler):
    """Answers every request with one byte every 0.5 s of a long body, for at most 10 s."""

    def log_message(self, *args):
        pass

    def _trickle(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(20):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.5)

    do_GET = do_POST = _trickle


def test_client_timeout_is_a_total_deadline(cli, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    np.save(tmp_path / "clip.npy", np.ones((2, 3, 4, 8, 8), np.float32))
    try:
        start = time.monotonic()
        r = cli("triton-client", "umt", "--inputs", tmp_path / "clip.npy",
                "-u", f"127.0.0.1:{server.server_address[1]}", "--timeout", "1.5")  # fmt: skip
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    _refused(r, "within 1.5 s")
    assert elapsed < 6


# --- the preprocessing model -------------------------------------------------------------------


def test_preprocess_refuses_oversize_requests_and_frames_and_stays_up(
    cli, exported, tmp_path, monkeypatch
):
    """The shipped model.py with the real decoder: a request over the size limit and a clip of
    frames over the pixel limit each get an error response; the next request is answered."""
    from test_triton_ensemble import _initialized_model, _request

    from support.videos import write_png_mov, write_video

    repo = tmp_path / "repo"
    assert (
        cli("triton", exported["plugin"], "-o", repo, "--name", "umt", "--ensemble").exit_code == 0
    )
    assert "umt_preprocess" in all_configs(repo)
    model = _initialized_model(repo, monkeypatch, "umt_preprocess_limits")
    good = [write_video(tmp_path / f"c{i}.mp4", 12).read_bytes() for i in range(BATCH)]
    big = write_png_mov(tmp_path / "big.mov", 5000, 5000, frames=1).read_bytes()
    model.max_request_bytes = len(big) + max(map(len, good))
    padded = good[0] * (model.max_request_bytes // len(good[0]) + 1)
    oversize, huge_frames, fine = model.execute(
        [_request([good[0], padded]), _request([big, good[1]]), _request(good)]
    )
    assert "over the limit" in str(oversize.error) and oversize.output_tensors == []
    assert "5000x5000" in str(huge_frames.error)
    assert fine.error is None and fine.output_tensors[0].as_numpy().shape[0] == BATCH
