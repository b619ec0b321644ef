"""Argument groups (Polygraphy-style): each command takes the groups it needs, and each group is
parsed and checked in one place, before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.validate.tolerances import Tolerances, apply_overrides, default_tolerances

# How every app of the CLI is built: -h as --help, defaults shown, and click's plain help layout,
# where an on/off flag shows as `--flag` / `--flag / --no-flag` (typer's rich layout adds a bogus
# `<bool>` argument to each flag).
APP_SETTINGS: dict = {
    "rich_markup_mode": None,
    "pretty_exceptions_enable": False,
    "add_completion": False,
    "context_settings": {
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    },
}

# Model source
Arch = Annotated[
    Optional[str],
    typer.Option(
        "--arch",
        help="Architecture name (see `vidtldr archs`); inferred from the checkpoint when left out.",
    ),
]
Frames = Annotated[
    Optional[int], typer.Option("--frames", help="Frames per clip (default: the architecture's).")
]
CkptFrames = Annotated[
    Optional[int],
    typer.Option(
        "--ckpt-frames",
        help="UMT: frames the checkpoint was trained on; positions are stretched in time to --frames.",
    ),
]
UnsafeLoad = Annotated[
    bool,
    typer.Option(
        "--unsafe-load",
        help="Allow unpickling a full pickled model. Unpickling runs code: only for files you trust.",
    ),
]
Schedule = Annotated[
    Optional[str],
    typer.Option(
        "--schedule",
        "-s",
        help="Merge schedule: RxL (16x12, 0.25x2), a,b,c (600,200,100), none, or a preset (msrvtt, didemo, ...).",
    ),
]
Batch = Annotated[
    Optional[int],
    typer.Option("--batch", "-b", help="Static batch size.", show_default="1, or the graph's"),
]

# Inputs for validation and profiling
_INPUTS_HELP = (
    "Real clips instead of seeded random ones: video files (mp4, mkv, avi, webm, mov), folders of them, "
    "or .npy/.npz arrays of preprocessed clips; repeat the flag for several."
)
Inputs = Annotated[
    Optional[list[Path]],
    typer.Option("--inputs", "--clips", help=_INPUTS_HELP, show_default="seeded random clips"),
]
# The same option and reading as --inputs, plus Polygraphy's spelling (--load-inputs).
InputsOrLoad = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--inputs",
        "--clips",
        "--load-inputs",
        help=_INPUTS_HELP
        + " --load-inputs is an alias (Polygraphy's name), e.g. for a --save-inputs file.",
        show_default="seeded random clips",
    ),
]
SaveInputs = Annotated[
    Optional[Path],
    typer.Option(
        "--save-inputs",
        help="Write the clips used to this .npz (clip_000, clip_001, ...: one batch per array), so --load-inputs reproduces the run elsewhere.",
        show_default="none",
    ),
]
SaveOutputs = Annotated[
    Optional[Path],
    typer.Option(
        "--save-outputs",
        help="Write the outputs to this .npz: the runtime's under their output names, PyTorch's (same schedule) under reference/<name>; batches concatenated in input order.",
        show_default="none",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed for random clips (and for demo weights).")]
NumInputs = Annotated[
    int, typer.Option("--num-inputs", help="How many random clip batches to compare.")
]
Report = Annotated[
    Optional[Path],
    typer.Option(
        "--report",
        help="Write the report as JSON here (and Markdown beside it, .md).",
        show_default="none",
    ),
]
ReportWithJsonAlias = Annotated[
    Optional[Path],
    typer.Option(
        "--report",
        "--json",
        help="Write the report as JSON here (Markdown beside it, .md); --json is an alias.",
        show_default="none",
    ),
]

# Tolerances (defaults per precision)
MaxAbs = Annotated[
    Optional[float], typer.Option("--max-abs", help="Tolerance: max absolute error.")
]
MeanAbs = Annotated[
    Optional[float], typer.Option("--mean-abs", help="Tolerance: mean absolute error.")
]
MinCosine = Annotated[
    Optional[float], typer.Option("--min-cosine", help="Tolerance: lowest cosine similarity.")
]
RelL2 = Annotated[Optional[float], typer.Option("--rel-l2", help="Tolerance: relative L2 error.")]
MinTop1 = Annotated[
    Optional[float], typer.Option("--min-top1", help="Tolerance: top-1 agreement (logits).")
]
StrictTokens = Annotated[
    bool,
    typer.Option(
        "--strict-tokens",
        help="Let the row-aligned `tokens` output decide the verdict of a merged model too (by default it is reported only: a merge choice flipped at a near-tie shifts the rows).",
    ),
]
MinTop5 = Annotated[
    Optional[float], typer.Option("--min-top5", help="Tolerance: top-5 agreement (logits).")
]


@dataclass
class ToleranceFlags:
    max_abs: float | None = None
    mean_abs: float | None = None
    cosine: float | None = None
    rel_l2: float | None = None
    top1: float | None = None
    top5: float | None = None

    def apply(self, base: Tolerances) -> Tolerances:
        given = {k: v for k, v in self.__dict__.items() if v is not None}
        return apply_overrides(base, given, "flags")


def tolerances_for(precision: str, flags: ToleranceFlags, config=None) -> Tolerances:
    """Precedence: flags over the export config's [tolerances] over the per-precision defaults."""
    base = default_tolerances(precision)
    if config is not None:
        base = apply_overrides(base, config.tolerances, "export config [tolerances]")
    return flags.apply(base)


def tolerance_flags(max_abs, mean_abs, min_cosine, rel_l2, min_top1, min_top5) -> ToleranceFlags:
    return ToleranceFlags(max_abs, mean_abs, min_cosine, rel_l2, min_top1, min_top5)
