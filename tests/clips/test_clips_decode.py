from __future__ import annotations

import pytest

from support.videos import (
    VIDEO_CASES,
    encoder_available,
    read_index,
    write_audio_only,
    write_garbage,
    write_video,
)
from vidtldr_deploy.clips import (
    count_frames,
    decode_frames,
    middle_indices,
    sample_frames,
    uniform_indices,
)
from vidtldr_deploy.errors import VidTLDRError

pytestmark = pytest.mark.video

N_FRAMES = 30


@pytest.fixture(scope="module", params=VIDEO_CASES, ids=lambda c: c.id)
def video(request, tmp_path_factory):
    case = request.param
    if not encoder_available(case.codec):
        pytest.skip(f"this PyAV wheel's FFmpeg has no {case.codec} encoder")
    folder = tmp_path_factory.mktemp(case.id.replace(".", "_"))
    return write_video(folder / f"clip{case.suffix}", N_FRAMES, case)


def test_every_frame_decodes_in_order(video):
    assert count_frames(video) == N_FRAMES
    frames = decode_frames(video, list(range(N_FRAMES)))
    assert frames.shape == (N_FRAMES, 48, 64, 3) and frames.dtype.name == "uint8"
    assert [read_index(f) for f in frames] == list(range(N_FRAMES))


@pytest.mark.parametrize("sampling, t", [("middle", 8), ("uniform", 8), ("middle", 30)])
def test_sampled_frames_are_the_sampled_indices(video, sampling, t):
    frames, indices = sample_frames(video, sampling, t)
    expected = {"middle": middle_indices, "uniform": uniform_indices}[sampling](N_FRAMES, t)
    assert indices == expected
    # Read from the pixels: the decoder really delivered those frames, in that order.
    assert [read_index(f) for f in frames] == expected


def test_repeated_and_unsorted_indices(video):
    frames = decode_frames(video, [5, 2, 5])
    assert [read_index(f) for f in frames] == [5, 2, 5]


def test_bad_files_are_named_errors(tmp_path):
    garbage = write_garbage(tmp_path / "random.mp4")
    with pytest.raises(VidTLDRError, match="random.mp4: cannot open"):
        sample_frames(garbage, "middle", 4)
    audio = write_audio_only(tmp_path / "audio.mp4")
    with pytest.raises(VidTLDRError, match="audio.mp4: no video stream"):
        sample_frames(audio, "middle", 4)
    short = write_video(tmp_path / "short.avi", 5)
    with pytest.raises(VidTLDRError, match="short.avi: the video has 5 frames, fewer than the 8"):
        sample_frames(short, "uniform", 8)
    with pytest.raises(VidTLDRError, match="nothing.mp4"):
        sample_frames(tmp_path / "nothing.mp4", "middle", 4)


def test_truncated_file_is_a_named_error(tmp_path):
    whole = write_video(tmp_path / "whole.avi", 30)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    # Either the packet count already stops short or decoding does; both name the file.
    with pytest.raises(VidTLDRError, match="cut.avi"):
        sample_frames(cut, "middle", 30)
