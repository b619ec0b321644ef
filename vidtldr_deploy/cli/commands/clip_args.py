"""The clip argument groups of every command that reads real clips: where the clips are, how bad
files are treated, where decoded clips are cached, how many are read and how many run at once;
parsed and checked before any work. `ClipArgs` (evaluate, tune) requires clips; `InputArgs`
(export, validate) falls back to seeded random clips without them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.errors import InputError

_CLIPS_HELP = (
    "Video files (mp4, mkv, avi, webm, mov), folders of them (recursive), or .npy/.npz arrays of "
    "preprocessed clips; repeat the flag for several."
)
ClipPaths = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--clips",
        "--inputs",
        help=_CLIPS_HELP,
        show_default="required; for 'demo', held-out clips of its task made on the fly",
    ),
]
InputPaths = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--inputs",
        "--clips",
        "--load-inputs",
        help="Real clips instead of seeded random ones: v" + _CLIPS_HELP[1:]
        + " --load-inputs is an alias (Polygraphy's name), e.g. for a --save-inputs file.",
        show_default="seeded random clips",
    ),
]  # fmt: skip
SkipBad = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Skip clips that cannot be decoded or are too short, with a warning and a count in the report, instead of stopping.",
    ),
]
CacheDir = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir",
        help="Keep decoded clips here as .npz (keyed by file hash, recipe and frames) so the next run does not decode again.",
        show_default="no cache",
    ),
]
MaxFramePixels = Annotated[
    Optional[int],
    typer.Option(
        "--max-frame-pixels",
        help="Refuse videos whose frames have more pixels than this, read from the header before decoding (env VIDTLDR_MAX_FRAME_PIXELS).",
        show_default="4096x4096",
    ),
]
MaxClipMib = Annotated[
    Optional[float],
    typer.Option(
        "--max-clip-mib",
        help="Refuse videos whose sampled frames would take more MiB decoded (RGB) than this (env VIDTLDR_MAX_CLIP_MIB).",
        show_default="4096",
    ),
]
MaxClips = Annotated[
    Optional[int],
    typer.Option("--max-clips", help="Read only the first N clips.", show_default="all"),
]
ClipBatch = Annotated[
    Optional[int],
    typer.Option(
        "--clip-batch",
        help="Clips decoded and run through the model at once: memory grows with this, not with the number of clips.",
        show_default="as many as fit 64 MiB of activations",
    ),
]


def _check(cache_dir: Path | None, max_clips: int | None) -> None:
    if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
        raise InputError(f"--cache-dir {cache_dir} is a file: give a folder")
    if max_clips is not None and max_clips < 1:
        raise InputError(f"--max-clips must be at least 1, got {max_clips}")


@dataclass
class ClipArgs:
    """The clip argument group (cli/args.py, argument_group) of commands that need real clips."""

    clips: ClipPaths = None
    skip_bad: SkipBad = False
    cache_dir: CacheDir = None
    max_clips: MaxClips = None
    clip_batch: ClipBatch = None
    max_frame_pixels: MaxFramePixels = None
    max_clip_mib: MaxClipMib = None

    @property
    def paths(self) -> list[Path]:
        return list(self.clips or [])

    def check(self) -> ClipArgs:
        # No --clips is refused by require(), which knows the target (the demo makes its own).
        from vidtldr_deploy.files import check_input_file

        for path in self.paths:
            if not path.exists():
                raise InputError(f"--clips {path} does not exist")
            if not path.is_dir():
                check_input_file(path, "--clips")  # a FIFO or device would block or never end
        _check(self.cache_dir, self.max_clips)
        if self.clip_batch is not None and self.clip_batch < 1:
            raise InputError(f"--clip-batch must be at least 1, got {self.clip_batch}")
        self.limits()  # a bad limit is refused with the other flags, before any work
        return self

    def limits(self):
        """The decode limits (clips/limits.py): these flags, else the environment, else defaults."""
        from vidtldr_deploy.clips.limits import DecodeLimits

        return DecodeLimits.resolve(self.max_frame_pixels, self.max_clip_mib)

    def require(self, source: str) -> None:
        """--clips is required, except for the trained demo (see demo_clips)."""
        from vidtldr_deploy.models.source import DEMO

        if not self.paths and source != DEMO:
            raise InputError("pass --clips PATH (videos, folders of them, or .npy/.npz arrays)")

    @contextlib.contextmanager
    def demo_clips(self, source: str) -> Iterator[Path | None]:
        """For the trained demo without --clips: held-out clips of its task, written to a temporary
        folder (removed afterwards) and used as --clips inside the block; yields their labels CSV.
        Otherwise changes nothing and yields None."""
        import tempfile

        from vidtldr_deploy.cli.console import info, status
        from vidtldr_deploy.clips.synthetic import DEMO_CLIP_SEED, DEMO_CLIPS, write_task
        from vidtldr_deploy.models.source import DEMO

        if self.paths or source != DEMO:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="vidtldr-demo-clips-") as tmp:
            with status(f"writing {DEMO_CLIPS} held-out clips of the demo's task"):
                made = write_task(tmp, DEMO_CLIPS, seed=DEMO_CLIP_SEED)
            info(
                f"clips: {DEMO_CLIPS} held-out clips of the demo's task (seed {DEMO_CLIP_SEED}), "
                f"labels included; `vidtldr demo-clips DIR` writes them to keep"
            )
            self.clips = [made.folder]
            try:
                yield made.labels_csv
            finally:
                self.clips = None

    def stream(self, model, arch: str, progress=None):
        """The clips as a ClipStream (vidtldr_deploy/clips/loader.py): decoded for `arch` at the
        model's frames and size as they are read, --clip-batch (or clips_per_pass) at a time."""
        from vidtldr_deploy.models.memory import clips_per_pass
        from vidtldr_deploy.validate.inputs import clip_stream

        batch = self.clip_batch or clips_per_pass(model)
        side = model.cfg.img_size
        return clip_stream(
            (batch, 3, model.frames, side, side), arch, self.paths, skip_bad=self.skip_bad,
            cache_dir=self.cache_dir, limit=self.max_clips, progress=progress, limits=self.limits(),
        )  # fmt: skip


@dataclass
class InputArgs:
    """The clip argument group of commands that compare on clips and fall back to random ones."""

    inputs: InputPaths = None
    skip_bad: SkipBad = False
    cache_dir: CacheDir = None
    max_clips: MaxClips = None

    @property
    def paths(self) -> list[Path]:
        return list(self.inputs or [])

    def check(self) -> InputArgs:
        given = self.skip_bad or self.cache_dir is not None or self.max_clips is not None
        if given and not self.paths:
            raise InputError(
                "--skip-bad, --cache-dir and --max-clips apply to real clips: pass --inputs PATH too"
            )
        _check(self.cache_dir, self.max_clips)  # the paths: with the target, all problems at once
        return self

    def options(self) -> dict:
        """The keyword arguments validate.inputs.make_inputs takes for these clips."""
        return {"skip_bad": self.skip_bad, "cache_dir": self.cache_dir, "limit": self.max_clips}


def clip_progress(description: str = "decoding clips"):
    """A transient progress bar and its callback for a ClipStream: (done, total, name)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vidtldr_deploy.cli.console import console

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    progress = Progress(*columns, console=console, transient=True)
    task = progress.add_task(description, total=None)

    def advance(done: int, total: int, name: str) -> None:
        progress.update(task, completed=done, total=total)

    return progress, advance


def show_clips(stream) -> None:
    """What was read, and what was skipped and why, once a stream has been read."""
    from vidtldr_deploy.cli.console import info

    info(f"clips: {stream.label}")
    for warning in stream.warnings():
        info(f"warning: {warning}")
