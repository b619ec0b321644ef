"""The argument group of commands that read real clips (evaluate, tune): where the clips are, how
bad files are treated, where decoded clips are cached; parsed and checked before any work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
        show_default="required; for 'demo', held-out clips of its task made on the fly",
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


@dataclass
class ClipArgs:
    """The clip argument group (cli/args.argument_group): --clips, --skip-bad, --cache-dir."""

    clips: ClipPaths = None
    skip_bad: SkipBad = False
    cache_dir: CacheDir = None

    @property
    def paths(self) -> list[Path]:
        return list(self.clips or [])

    def check(self) -> ClipArgs:
        for path in self.paths:
            if not path.exists():
                raise InputError(f"--clips {path} does not exist")
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise InputError(f"--cache-dir {self.cache_dir} is a file: give a folder")
        return self

    def require(self, source: str) -> None:
        """--clips is required, except for the trained demo (see demo_clips)."""
        from vidtldr_deploy.models.source import DEMO

        if not self.paths and source != DEMO:
            raise InputError("pass --clips PATH (videos, folders of them, or .npy/.npz arrays)")

    @contextlib.contextmanager
    def demo_clips(self, source: str) -> Iterator[Path | None]:
        """For the trained demo without --clips: held-out clips of its task, written to a temporary
        folder (removed afterwards) and used as --clips; yields their labels CSV. Otherwise
        changes nothing and yields None."""
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
                self.clips = []

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
            )
        info(f"clips: {batches.label}")
        for warning in batches.warnings:
            info(f"warning: {warning}")
        return batches
