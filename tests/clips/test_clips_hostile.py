"""Hostile clip inputs: special files refused by type, an interrupt during a blocking FFmpeg read,
huge frames and huge arrays refused from their headers before anything is decoded or loaded,
rotated video, arrays that are not preprocessed clips, and a clip cache that fails or holds NaN."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from support.videos import write_png_mov, write_video
from vidtldr_deploy.clips import DecodeLimits, load_clips, recipe_for, sample_frames
from vidtldr_deploy.clips.sources import ClipSource, array_clips, expand_paths
from vidtldr_deploy.errors import InputError, VidTLDRError

pytestmark = pytest.mark.video

REPO = Path(__file__).resolve().parents[2]


# --- file types --------------------------------------------------------------------------------


def test_fifo_device_symlink_and_socket_are_refused_by_type(tmp_path):
    fifo = tmp_path / "f.mp4"
    os.mkfifo(fifo)
    zero = tmp_path / "z.mp4"
    zero.symlink_to("/dev/zero")
    sock_path = tmp_path / "s.mp4"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for path, kind in ((fifo, "FIFO"), (zero, "character device"), (sock_path, "socket")):
            start = time.monotonic()
            with pytest.raises(InputError, match=kind):
                expand_paths([path])  # never opened: opening a FIFO would block here
            assert time.monotonic() - start < 5
    finally:
        sock.close()


def test_a_folder_skips_special_files(tmp_path):
    write_video(tmp_path / "good.mp4", 6)
    os.mkfifo(tmp_path / "pipe.mp4")
    assert [s.path.name for s in expand_paths([tmp_path])] == ["good.mp4"]


_INTERRUPTED_READ = """
import signal, sys
from vidtldr_deploy.cli.main import _terminate
from vidtldr_deploy.clips import load_video_clip, recipe_for
from vidtldr_deploy.errors import VidTLDRError
signal.signal(signal.SIGTERM, _terminate)
print("reading", flush=True)
try:
    load_video_clip(sys.argv[1], recipe_for("umt-tiny"), 4)
except KeyboardInterrupt:
    sys.exit(130)
except VidTLDRError as err:
    print("bad file:", err, flush=True)
    sys.exit(2)
"""


def _wait_until_blocked_opening_the_fifo(pid: int, limit_s: float = 60) -> None:
    """Until the kernel shows the process waiting in open() for the FIFO's writer (wchan
    `wait_for_partner`, Linux); where /proc does not tell, a few seconds."""
    wchan = Path(f"/proc/{pid}/wchan")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            state = wchan.read_text().strip()
        except OSError:
            time.sleep(3)
            return
        if state == "wait_for_partner":
            return
        if state in ("", "0"):  # wchan hidden
            time.sleep(3)
            return
        time.sleep(0.05)
    pytest.fail("the decoder never reached the FIFO's open()")


def test_sigterm_during_a_blocking_ffmpeg_read_is_an_interrupt_not_a_bad_file(tmp_path):
    """A real FIFO nobody writes: FFmpeg blocks opening it; SIGTERM must become KeyboardInterrupt
    (exit 130 in the CLI), never a file error that --skip-bad would turn into a skipped clip."""
    fifo = tmp_path / "blocked.mp4"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_READ, str(fifo)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "reading"
        _wait_until_blocked_opening_the_fifo(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, out


# --- decode limits -----------------------------------------------------------------------------


def test_huge_frames_are_refused_from_the_header_before_decoding(tmp_path):
    """5000x5000 frames (25 Mpixel) are over the default 4096x4096; refused in well under the time
    decoding them would take, naming the file and the limit."""
    big = write_png_mov(tmp_path / "big.mov", 5000, 5000, frames=1)
    assert big.stat().st_size < 2_000_000
    start = time.monotonic()
    with pytest.raises(InputError, match="big.mov.*5000x5000.*--max-frame-pixels"):
        sample_frames(big, "uniform", 2)
    assert time.monotonic() - start < 1.0


def test_limits_default_admits_4k_and_are_raised_by_flag_or_env(monkeypatch):
    limits = DecodeLimits.resolve()
    limits.check_clip("uhd.mp4", 3840, 2160, 16)
    limits.check_clip("dci.mp4", 4096, 2160, 16)
    with pytest.raises(InputError, match="MiB per clip.*--max-clip-mib"):
        limits.check_clip("long.mp4", 3840, 2160, 200)
    assert DecodeLimits.resolve(max_frame_pixels=5000 * 5000).max_frame_pixels == 25_000_000
    monkeypatch.setenv("VIDTLDR_MAX_FRAME_PIXELS", "100")
    monkeypatch.setenv("VIDTLDR_MAX_CLIP_MIB", "0.5")
    assert DecodeLimits.resolve() == DecodeLimits(100, 2**19)
    assert DecodeLimits.resolve(max_frame_pixels=200).max_frame_pixels == 200  # flag wins
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("VIDTLDR_MAX_FRAME_PIXELS", bad)
        with pytest.raises(InputError, match="VIDTLDR_MAX_FRAME_PIXELS"):
            DecodeLimits.resolve()


def test_limits_reach_the_loader_and_decode_clip(tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mp4", 8)  # 64x48
    small = DecodeLimits(max_frame_pixels=64 * 48 - 1)
    with pytest.raises(InputError, match="clip.mp4.*64x48"):
        load_clips([video], "umt-tiny", 4, 1, limits=small)
    assert load_clips([video], "umt-tiny", 4, 1, limits=DecodeLimits()).count == 1
    # The bytes a client sends to the Triton preprocessing model: the same limits, from the env.
    from vidtldr_deploy.clips import decode_clip

    monkeypatch.setenv("VIDTLDR_MAX_CLIP_MIB", "0.01")  # 4 frames of 64x48 RGB = 36 KiB
    with pytest.raises(InputError, match="MiB per clip"):
        decode_clip(video.read_bytes(), "umt-tiny", 4)


def test_rotation_metadata_is_applied(tmp_path):
    """A phone's portrait video: landscape pixels with a 90 degree display matrix. Frames come out
    as a player shows them (48 wide, 64 high), the marked top-left corner turned to bottom-left."""
    import av

    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 25)
        stream.set_display_rotation(90)
        for i in range(6):
            pixels = np.zeros((48, 64, 3), np.uint8)
            pixels[:16, :16] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    frames, _ = sample_frames(path, "uniform", 2)
    assert frames.shape == (2, 64, 48, 3)
    bright = np.argwhere(frames[0].mean(axis=2) > 128).mean(axis=0)
    assert bright[0] > 40 and bright[1] < 16  # bottom-left


# --- arrays ------------------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """The magic and header numpy.save writes for an array of `shape`, without its data."""
    import io

    from numpy.lib import format as npy

    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_declaring_terabytes_is_refused_from_its_header(tmp_path):
    """An .npz member whose header declares 20,000 clips of 3x16x224x224 floats (193 GB) with a
    few bytes of data: refused against the memory limit without loading anything."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("clips.npy", _npy_header((20000, 3, 16, 224, 224)) + bytes(64))
    start = time.monotonic()
    with pytest.raises(InputError, match="bomb.npz declares .* GiB.*VIDTLDR_MEMORY_LIMIT_GIB"):
        load_clips([path], "umt-tiny", 4, 1)
    assert time.monotonic() - start < 1.0


def test_array_over_a_lowered_memory_limit_is_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "clips.npy", np.zeros((64, 3, 4, 32, 32), np.float32))  # 3 MiB
    monkeypatch.setenv("VIDTLDR_MEMORY_LIMIT_GIB", str(1 / 1024))  # 1 MiB
    with pytest.raises(InputError, match="memory limit"):
        array_clips(ClipSource(tmp_path / "clips.npy", "array"), (3, 4, 32, 32))


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(_npy_header((2, 3, 4, 32, 32))[:20]), "not a readable"),
        (
            lambda p: p.write_bytes(
                b"\x93NUMPY\x01\x00" + (60000).to_bytes(2, "little") + b"{" * 60000
            ),
            "not a readable",
        ),  # fmt: skip
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "objects"),
        (lambda p: np.save(p, np.float32(1.0)), "0-d"),
        (lambda p: np.save(p, np.zeros((1, 3, 4, 32, 32), np.uint8)), "raw frames as video"),
        (lambda p: np.save(p, np.zeros((1, 3, 4, 32, 32), bool)), "raw frames as video"),
    ],
    ids=["empty", "truncated", "huge-header", "object", "0-d", "uint8", "bool"],
)
def test_arrays_that_are_not_clips_are_named(tmp_path, write, match):
    path = tmp_path / "clips.npy"
    write(path)
    with pytest.raises(VidTLDRError, match=match):
        load_clips([path], "umt-tiny", 4, 1)


# --- the clip cache ----------------------------------------------------------------------------


def test_a_failed_cache_write_warns_and_the_run_goes_on(tmp_path, monkeypatch):
    from vidtldr_deploy.clips import cache

    video = write_video(tmp_path / "clip.mp4", 8)

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", full)
    clips = load_clips([video], "umt-tiny", 4, 1, cache_dir=tmp_path / "cache")
    assert clips.count == 1 and np.isfinite(clips.batches[0].video).all()
    assert any("cache not written" in w and "No space" in w for w in clips.warnings())
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written entry


def test_a_cache_entry_holding_nan_is_decoded_again(tmp_path):
    from vidtldr_deploy.clips.cache import cache_key, cache_path, file_sha256

    video = write_video(tmp_path / "clip.mp4", 8)
    cache_dir = tmp_path / "cache"
    fresh = load_clips([video], "umt-tiny", 4, 1, cache_dir=cache_dir)
    key = cache_key(file_sha256(video), recipe_for("umt-tiny"), 4)
    poisoned = np.full_like(fresh.batches[0].video[0], np.nan)
    np.savez(cache_path(cache_dir, key), clip=poisoned)
    again = load_clips([video], "umt-tiny", 4, 1, cache_dir=cache_dir)
    assert again.cache_hits == 0
    np.testing.assert_array_equal(again.batches[0].video, fresh.batches[0].video)
    third = load_clips([video], "umt-tiny", 4, 1, cache_dir=cache_dir)
    assert third.cache_hits == 1  # the entry was rewritten with the decoded clip
