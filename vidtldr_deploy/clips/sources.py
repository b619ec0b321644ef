"""User paths -> clip sources: video files, folders of them, and .npy/.npz clip batches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.files import check_input_file

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov")
ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class ClipSource:
    """One thing to load: a video file (kind "video"), or one array of already preprocessed clips
    (kind "array": a whole .npy, or one member `key` of a .npz), as validate.inputs.make_inputs reads."""

    path: Path
    kind: str
    key: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.key}" if self.key is not None else str(self.path)


def expand_paths(paths: Iterable[str | Path]) -> list[ClipSource]:
    """Every clip source named by `paths`, in the order given; a folder contributes its video
    files (recursively, sorted by relative path so every run and machine sees the same order)."""
    sources: list[ClipSource] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"clip path {path} does not exist")
        if path.is_dir():
            sources.extend(_folder_sources(path))
        else:
            sources.extend(_file_sources(check_input_file(path, "clip")))
    return sources


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _file_sources(path: Path) -> list[ClipSource]:
    suffix = _suffix(path)
    if suffix in VIDEO_SUFFIXES:
        return [ClipSource(path, "video")]
    if suffix == ".npy":
        return [ClipSource(path, "array")]
    if suffix == ".npz":
        return [ClipSource(path, "array", key) for key in _npz_keys(path)]
    raise InputError(
        f"{path}: unsupported clip file type {path.suffix!r}; use a video "
        f"({', '.join(VIDEO_SUFFIXES)}), a folder of videos, or a .npy/.npz clip batch"
    )


def _folder_sources(folder: Path) -> list[ClipSource]:
    # Only videos: arrays are whole batches for one input shape, named one by one on purpose.
    # Hidden files (e.g. macOS "._clip.mp4" resource forks) are not videos.
    found = [
        p
        for p in folder.rglob("*")
        if p.is_file() and _suffix(p) in VIDEO_SUFFIXES and not p.name.startswith(".")
    ]
    if not found:
        raise InputError(
            f"folder {folder} holds no video files ({', '.join(VIDEO_SUFFIXES)}, searched "
            "recursively)"
        )
    found.sort(key=lambda p: p.relative_to(folder).as_posix())
    return [ClipSource(p, "video") for p in found]


def _npz_keys(path: Path) -> list[str]:
    _check_array_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
    except Exception as err:  # noqa: BLE001 - BadZipFile, EOFError, ValueError, OSError ...
        raise InputError(f"{path} is not a readable .npz file ({_detail(err)}): save it again "
                           f"with numpy.savez") from err  # fmt: skip
    if not keys:
        raise InputError(
            f"{path} holds no arrays: save the clips with numpy.savez(path, clips=...)"
        )
    _check_declared(path, [_declared(path, key) for key in keys])
    return keys


def _detail(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _check_array_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InputError(f"{path} cannot be read: {err.strerror or err}") from err
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes): the copy was cut short; write it again")


def _read_header(f) -> tuple[tuple[int, ...], np.dtype]:
    from numpy.lib import format as npy

    version = npy.read_magic(f)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, _, dtype = read(f)  # refuses headers over numpy's 10,000-byte limit
    return tuple(shape), dtype


def _declared(path: Path, key: str | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an .npy (or one member of an .npz) declares, read from its header alone."""
    import zipfile

    try:
        if key is None:
            with open(path, "rb") as f:
                return _read_header(f)
        with zipfile.ZipFile(path) as archive:
            member = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key
            with archive.open(member) as f:
                return _read_header(f)
    except Exception as err:  # noqa: BLE001 - truncated or damaged headers raise many types
        name = path if key is None else f"{path}:{key}"
        raise InputError(
            f"{name} is not a readable .npy/.npz array ({_detail(err)}): save it again with "
            f"numpy.save / numpy.savez"
        ) from err


def _check_declared(path: Path, headers: list[tuple[tuple[int, ...], np.dtype]]) -> None:
    """Refuse, before loading, arrays of Python objects and arrays whose declared size is over
    the memory limit (a small compressed file can declare terabytes of zeros)."""
    # Here, not at the top: the serving preprocessor imports clips without torch (models/ has it).
    from vidtldr_deploy.models.memory import LIMIT_ENV, memory_limit_bytes

    total = 0
    for shape, dtype in headers:
        if dtype.hasobject:
            raise InputError(
                f"{path} holds Python objects ({dtype}), not numbers: save float32 clips with "
                "numpy.save / numpy.savez"
            )
        total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    limit = memory_limit_bytes()
    if total > limit:
        raise InputError(
            f"{path} declares {total / 2**30:,.1f} GiB of arrays, over the {limit / 2**30:,.1f} "
            f"GiB memory limit: split the clips into smaller files, or raise {LIMIT_ENV} if this "
            "machine has the memory"
        )


def read_array(source: ClipSource) -> np.ndarray:
    """The array a kind-"array" source names, as stored; pickled object arrays are never loaded,
    and the declared size is checked against the memory limit before anything is loaded."""
    _check_array_file(source.path)
    _check_declared(source.path, [_declared(source.path, source.key)])
    try:
        if source.key is None:
            return np.load(source.path, allow_pickle=False)
        with np.load(source.path, allow_pickle=False) as archive:
            return archive[source.key]
    except Exception as err:  # noqa: BLE001 - truncated or damaged files raise many types
        raise InputError(
            f"{source.name} is not a readable .npy/.npz array ({_detail(err)}): save it again with "
            f"numpy.save / numpy.savez"
        ) from err


def check_clip_values(arr: np.ndarray, name: str) -> None:
    """Only real numbers become clips: strings are refused, complex values are refused rather than
    silently losing their imaginary part, and NaN/Inf are named by clip before any run."""
    if np.iscomplexobj(arr):
        raise InputError(f"{name} holds complex values ({arr.dtype}): clips must be real numbers")
    if arr.dtype.kind in "ub":
        raise InputError(
            f"{name} holds {arr.dtype} values: an array is taken as clips already preprocessed "
            "(normalised float32); pass raw frames as video files (--clips clip.mp4), which are "
            "sampled and normalised for the model"
        )
    if arr.dtype.kind not in "fi":
        raise InputError(
            f"{name} holds {arr.dtype} values, not numbers: save preprocessed float32 clips"
        )
    if arr.ndim == 0:
        raise InputError(f"{name} holds a single number (a 0-d array), not clips")
    if arr.dtype.kind == "f":
        bad = [i for i, clip in enumerate(arr) if not np.isfinite(clip).all()]
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (
                f", ... ({len(bad) - 5} more)" if len(bad) > 5 else ""
            )
            raise InputError(
                f"{name} has NaN or Inf values in clip(s) {shown}: fix the preprocessing"
            )


def array_clips(
    source: ClipSource, shape: tuple[int, int, int, int], batch: int | None = None
) -> list[np.ndarray]:
    """The clips of an array source: a batch (n, *shape) gives n clips, a single clip `shape`
    one; float32, as the graph takes them. Arrays are used as they are (already preprocessed)."""
    arr = read_array(source)
    if tuple(arr.shape) == tuple(shape):
        arr = arr[None]
    check_clip_values(arr, source.name)
    if arr.ndim != 5 or tuple(arr.shape[1:]) != tuple(shape):
        raise InputError(
            f"{source.name}: clips of shape {tuple(arr.shape)}, but the model takes "
            f"({batch if batch else 'batch'}, {', '.join(map(str, shape))})"
        )
    return [np.ascontiguousarray(clip, dtype=np.float32) for clip in arr]
