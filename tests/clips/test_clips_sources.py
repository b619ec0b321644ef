from __future__ import annotations

import numpy as np
import pytest

from vidtldr_deploy.clips import expand_paths
from vidtldr_deploy.errors import VidTLDRError


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_folder_is_recursive_sorted_and_video_only(tmp_path):
    root = tmp_path / "clips"
    for rel in [
        "b.mp4",
        "a/z.MKV",
        "a/y.webm",
        "c.avi",
        "notes.txt",
        ".hidden.mp4",
        "x.npy",
        "d/e/f.mov",
    ]:
        _touch(root / rel)
    names = [s.path.relative_to(root).as_posix() for s in expand_paths([root])]
    assert names == ["a/y.webm", "a/z.MKV", "b.mp4", "c.avi", "d/e/f.mov"]
    assert {s.kind for s in expand_paths([root])} == {"video"}


def test_files_keep_the_given_order_and_arrays_expand(tmp_path):
    clip = np.zeros((2, 3, 4, 8, 8), np.float32)
    np.save(tmp_path / "one.npy", clip)
    np.savez(tmp_path / "two.npz", first=clip, second=clip)
    video = _touch(tmp_path / "v.mp4")
    sources = expand_paths([video, tmp_path / "two.npz", str(tmp_path / "one.npy")])
    assert [(s.kind, s.key) for s in sources] == [
        ("video", None),
        ("array", "first"),
        ("array", "second"),
        ("array", None),
    ]
    assert sources[1].name.endswith("two.npz:first")


def test_path_errors_name_the_path(tmp_path):
    with pytest.raises(VidTLDRError, match="missing.mp4 does not exist"):
        expand_paths([tmp_path / "missing.mp4"])
    with pytest.raises(VidTLDRError, match=r"unsupported clip file type '\.gif'"):
        expand_paths([_touch(tmp_path / "anim.gif")])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    _touch(tmp_path / "empty" / "sub" / "readme.txt")
    with pytest.raises(VidTLDRError, match="empty holds no video files"):
        expand_paths([tmp_path / "empty"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(VidTLDRError, match="bad.npz is not a readable"):
        expand_paths([tmp_path / "bad.npz"])
