"""Argument groups (Polygraphy-style): each command takes the groups it needs, and each group is
parsed and checked in one place, before any work."""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.constants import DEMO_SCHEDULE
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.validate.tolerances import (
    DEFAULT_TOLERANCES,
    Tolerances,
    apply_overrides,
    default_tolerances,
)

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
        show_default=f"{DEMO_SCHEDULE} for demo; a checkpoint needs one",
    ),
]
Batch = Annotated[
    Optional[int],
    typer.Option("--batch", "-b", help="Static batch size.", show_default="1, or the graph's"),
]

Threads = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        help="CPU threads: torch.set_num_threads and ONNX Runtime intra_op_num_threads (recorded in the report).",
        show_default="the runtime's default",
    ),
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
Seed = Annotated[
    int, typer.Option("--seed", help="Seed for random clips (and for demo-random weights).")
]
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
def _per_precision(name: str) -> str:
    """A tolerance's defaults for the help: "fp32 0.05, fp16 0.1, int8 0.5"."""
    return ", ".join(f"{p} {getattr(t, name):g}" for p, t in DEFAULT_TOLERANCES.items())


def _tolerance(flag: str, help: str, name: str):
    return Annotated[
        Optional[float], typer.Option(flag, help=help, show_default=_per_precision(name))
    ]


MaxAbs = _tolerance("--max-abs", "Tolerance: max absolute error.", "max_abs")
MeanAbs = _tolerance("--mean-abs", "Tolerance: mean absolute error.", "mean_abs")
MinCosine = _tolerance("--min-cosine", "Tolerance: lowest cosine similarity.", "cosine")
RelL2 = _tolerance("--rel-l2", "Tolerance: relative L2 error.", "rel_l2")
MinTop1 = _tolerance("--min-top1", "Tolerance: top-1 agreement (logits).", "top1")
MinTop5 = _tolerance("--min-top5", "Tolerance: top-5 agreement (logits).", "top5")
StrictTokens = Annotated[
    bool,
    typer.Option(
        "--strict-tokens",
        help="Let the row-aligned `tokens` output decide the verdict of a merged model too (by default it is reported only: a merge choice flipped at a near-tie shifts the rows).",
    ),
]


@dataclass
class ToleranceFlags:
    """The tolerance argument group: one option per bound; given ones override the defaults."""

    max_abs: MaxAbs = None
    mean_abs: MeanAbs = None
    min_cosine: MinCosine = None
    rel_l2: RelL2 = None
    min_top1: MinTop1 = None
    min_top5: MinTop5 = None

    def check(self) -> ToleranceFlags:
        # A bound above what any output reaches (--min-cosine 1.1) is legal: it makes the check
        # fail, which is what a user asking for it wants to see. Below the metric's range it is a typo.
        lowest = {"min_cosine": -1.0}
        for field_name, value in self.__dict__.items():
            if value is None:
                continue
            floor = lowest.get(field_name, 0.0)
            if value < floor:
                flag = "--" + field_name.replace("_", "-")
                raise InputError(f"{flag} {value}: below the metric's range (at least {floor:g})")
        return self

    def given(self) -> dict[str, float]:
        names = {"max_abs": "max_abs", "mean_abs": "mean_abs", "min_cosine": "cosine",
                 "rel_l2": "rel_l2", "min_top1": "top1", "min_top5": "top5"}  # fmt: skip
        return {names[k]: v for k, v in self.__dict__.items() if v is not None}

    def apply(self, base: Tolerances) -> Tolerances:
        return apply_overrides(base, self.given(), "flags")


def tolerances_for(precision: str, flags: ToleranceFlags, config=None) -> Tolerances:
    """Precedence: flags over the export config's [tolerances] over the per-precision defaults."""
    base = default_tolerances(precision)
    if config is not None:
        base = apply_overrides(base, config.tolerances, "export config [tolerances]")
    return flags.apply(base)


def argument_group(name: str, group: type):
    """Polygraphy-style argument groups for typer: the decorated command takes one parameter
    `name` of dataclass type `group`; the CLI shows the group's fields as options (their
    Annotated types carry the typer.Option), and the command receives the group built from them
    and checked (`group.check()`) before its body runs. One group, declared once, serves every
    command that takes it."""
    hints = typing.get_type_hints(group, include_extras=True)
    members = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if f.default is MISSING else f.default,
            annotation=hints[f.name],
        )
        for f in fields(group)
    ]

    def decorate(fn):
        # typer reads a command's parameters from its signature; a __signature__ is taken as is (no
        # string annotations evaluated), so every annotation here is the resolved object.
        fn_hints = typing.get_type_hints(fn, include_extras=True)
        params = [
            p.replace(annotation=fn_hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != name
        ]
        required = [p for p in params if p.default is inspect.Parameter.empty]
        optional = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in params
            if p.default is not inspect.Parameter.empty
        ]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in fields(group)}
            kwargs[name] = group(**values).check()
            return fn(*args, **kwargs)

        command.__signature__ = inspect.Signature(required + optional + members)
        command.__annotations__ = {p.name: p.annotation for p in required + optional + members}
        return command

    return decorate
