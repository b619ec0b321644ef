"""Files the toolkit writes and reads: atomic outputs with normal permissions, output-path checks
made before any work, and content hashes.

An output appears whole or not at all: it is written to a hidden temporary file beside the target
and moved into place only when the block succeeds. The temporary file is removed on any failure,
Ctrl-C included; the CLI turns SIGTERM into the same unwinding (cli/main.py), so a killed run leaves
nothing half-written either.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from vidtldr_deploy.errors import InputError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def umask() -> int:
    """The process umask, read without changing it for more than an instant."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str | Path, what: str = "-o") -> Path:
    """Refuse an output path that cannot be written, before any work: a missing or read-only
    folder, or an existing directory in its place. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory: give a file name inside it")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(
            f"{what} {path}: folder {parent} does not exist: create it (mkdir -p {parent}) or "
            f"choose another {what} path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: folder {parent} is not writable: choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{what} {path} exists and is read-only: remove it or choose another path")
    return path


_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_input_file(path: str | Path, what: str) -> Path:
    """Refuse, by its type and before it is opened, an input that is not a regular file: a folder,
    a FIFO, a device or a socket (also behind a symlink, e.g. one to /dev/zero). Reading one
    would block forever or never end. Returns the path."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise InputError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{what} {path} is a folder: give a file")
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            raise InputError(f"{what} {path} is {kind}, not a regular file: give a file on disk")
    return path


def write_error(path: str | Path, err: OSError) -> InputError | None:
    """The named error for a write that failed because of the disk (full, quota, read-only,
    permissions), or None for any other OSError (a bug, left to propagate)."""
    return _write_error(Path(path), err) if err.errno in _DISK_ERRNOS else None


def markdown_path(path: str | Path) -> Path:
    """A report's Markdown beside its JSON: r.json -> r.md; r.md -> r.md.md, so the Markdown never
    replaces the JSON. Here, not in report/, so output checks made before any work can name it."""
    path = Path(path)
    return (
        path.with_suffix(".md")
        if path.suffix.lower() != ".md"
        else path.with_name(path.name + ".md")
    )


def _absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(path))


def check_distinct_outputs(paths: dict[str, Path | None]) -> None:
    """Two outputs of one command must never be the same file (e.g. --report equal to -o)."""
    seen: dict[Path, str] = {}
    for what, path in paths.items():
        if path is None:
            continue
        key = _absolute(path)
        if key in seen:
            raise InputError(f"{what} {path} is also {seen[key]}: one would overwrite the other")
        seen[key] = what


REPORT_FLAGS = ("--report", "--json")


def check_outputs(
    outputs: Mapping[str, Path | None],
    inputs: Mapping[str, Path | None] | None = None,
    reports: tuple[str, ...] = REPORT_FLAGS,
) -> dict[str, Path]:
    """The one check every command makes of the files it will write, before any work: each can be
    written (check_output_path), and no two of them, nor one of them and an input, are the same
    file. A report (a key in `reports`) brings its Markdown sibling along as an output of its
    own, so `--report r.json --write-config r.md` is refused too. Returns every output checked,
    the Markdown siblings included."""
    checked: dict[str, Path] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        checked[what] = check_output_path(path, what)
        if what in reports:
            checked[f"{what}'s Markdown"] = check_output_path(
                markdown_path(path), f"{what} (its Markdown)"
            )
    # Inputs first, so a collision names the output: "--report g.onnx is also the graph". An
    # input named twice is no collision (nothing writes it).
    given: dict[str, Path] = {}
    for what, path in (inputs or {}).items():
        if path is not None and _absolute(path) not in map(_absolute, given.values()):
            given[what] = Path(path)
    check_distinct_outputs({**given, **checked})
    return checked


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds, so a
    failure never leaves a half-written file behind. The result gets the permissions any tool's
    output gets (0666 minus the umask), not mkstemp's 0600, so an engine can be handed to a
    container or another user; an existing file's mode is kept."""
    path = Path(path)
    check_output_path(path, "output")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from err
    os.close(fd)
    try:
        yield Path(tmp)
        mode = (path.stat().st_mode & 0o7777) if path.exists() else (0o666 & ~umask())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in _DISK_ERRNOS:
            raise _write_error(path, err) from err
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# Failures of the disk, not of the toolkit: a full disk, a quota, a read-only or vanished mount.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                errno.ENOENT}  # fmt: skip


def _write_error(path: Path, err: OSError) -> InputError:
    reason = err.strerror or str(err)
    fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space under your quota",
           errno.EROFS: "the filesystem is read-only"}.get(err.errno, "check the folder")  # fmt: skip
    return InputError(
        f"could not write {path}: {reason}; nothing was left behind. {fix[0].upper() + fix[1:]}, "
        f"or choose another output path"
    )
