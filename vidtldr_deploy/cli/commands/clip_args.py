"""The argument group of commands that read real clips (evaluate, tune): where the clips are, how
bad files are treated, where decoded clips are cached; parsed and checked before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.errors import InputError

ClipPaths = Annotated[
    list[Path],
    typer.Option(
        "--clips",
        "--inputs",
        help="Video files (mp4, mkv, avi, webm, mov), folders of them (recursive), or .npy/.npz arrays of preprocessed clips; repeat the flag for several.",
    ),
]
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


@dataclass
class ClipArgs:
    """The clip argument group (cli/args.argument_group): --clips, --skip-bad, --cache-dir and the
    decode limits."""

    clips: ClipPaths
    skip_bad: SkipBad = False
    cache_dir: CacheDir = None
    max_frame_pixels: MaxFramePixels = None
    max_clip_mib: MaxClipMib = None

    @property
    def paths(self) -> list[Path]:
        return list(self.clips)

    def check(self) -> ClipArgs:
        if not self.paths:
            raise InputError("pass --clips PATH (videos, folders of them, or .npy/.npz arrays)")
        from vidtldr_deploy.files import check_input_file

        for path in self.paths:
            if not path.exists():
                raise InputError(f"--clips {path} does not exist")
            if not path.is_dir():
                check_input_file(path, "--clips")  # a FIFO or device would block or never end
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise InputError(f"--cache-dir {self.cache_dir} is a file: give a folder")
        self.limits()  # a bad limit is refused with the other flags, before any work
        return self

    def limits(self):
        from vidtldr_deploy.clips.limits import DecodeLimits

        return DecodeLimits.resolve(self.max_frame_pixels, self.max_clip_mib)

    def load(self, shape: tuple[int, ...], arch: str):
        """The clips decoded and preprocessed for `arch` at `shape`, with a progress bar."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from vidtldr_deploy.cli.console import console, info
        from vidtldr_deploy.validate.inputs import clip_batches

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("decoding clips", total=None)

            def advance(done: int, total: int, name: str) -> None:
                progress.update(task, completed=done, total=total)

            batches = clip_batches(
                shape,
                arch,
                self.paths,
                skip_bad=self.skip_bad,
                cache_dir=self.cache_dir,
                progress=advance,
                limits=self.limits(),
            )
        info(f"clips: {batches.label}")
        for warning in batches.warnings:
            info(f"warning: {warning}")
        return batches
