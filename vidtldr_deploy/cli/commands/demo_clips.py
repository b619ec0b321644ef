"""`vidtldr demo-clips`: write clips of the demo's task (videos, labels CSV, object masks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtldr_deploy.cli.console import guarded, info, out
from vidtldr_deploy.errors import InputError


def demo_clips_command(
    folder: Annotated[
        Path, typer.Argument(help="Folder to write the clips into (made if absent).")
    ],
    count: Annotated[int, typer.Option("--count", help="How many clips.")] = 48,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Which set of clips; the demo model was trained on set 1 and selected on set 2.",
        ),
    ] = 3,
) -> None:
    """Clips of the demo's task: a white-bordered square among look-alikes; its colour is the label."""
    from vidtldr_deploy.clips.synthetic import CLASSES, write_task

    if count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    made = write_task(folder, count, seed=seed)
    out.print(
        f"{count} clips (set {seed}) in {made.folder}: labels {made.labels_csv.name} "
        f"(classes {', '.join(f'{i} {c}' for i, c in enumerate(CLASSES))}), masks {made.masks_npz.name}",
        highlight=False,
    )
    info(f"evaluate on them: vidtldr evaluate demo --clips {folder} --labels {made.labels_csv}")


def register(app: typer.Typer) -> None:
    app.command("demo-clips")(guarded(demo_clips_command))
