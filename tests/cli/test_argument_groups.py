"""cli/args.argument_group: one dataclass of options declared once, shown by every command that
takes it, parsed into one checked value before the command's body runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import guarded

runner = CliRunner()


def _app(seen: list):
    app = typer.Typer(**opt.APP_SETTINGS)

    @opt.argument_group("flags", opt.ToleranceFlags)
    def check(
        name: str,
        output: Annotated[Path, typer.Option("--output", "-o")],
        flags: opt.ToleranceFlags = None,
        loud: Annotated[bool, typer.Option("--loud", "-l")] = False,
    ) -> None:
        seen.append((name, output, flags, loud))

    app.command()(guarded(check))
    return app


def test_group_options_are_shown_and_parsed_into_one_value():
    seen: list = []
    app = _app(seen)
    help_text = runner.invoke(app, ["--help"]).output
    for flag in (
        "--max-abs",
        "--mean-abs",
        "--min-cosine",
        "--rel-l2",
        "--min-top1",
        "--min-top5",
        "--loud",
    ):
        assert flag in help_text
    result = runner.invoke(
        app, ["x", "-o", "out.onnx", "--min-cosine", "0.9", "--max-abs", "0.5", "-l"]
    )
    assert result.exit_code == 0, result.output
    name, output, flags, loud = seen[0]
    # the command's own options keep their declarations (a required option with a short alias)
    assert name == "x" and output == Path("out.onnx") and loud is True
    assert isinstance(flags, opt.ToleranceFlags)
    assert flags.given() == {"cosine": 0.9, "max_abs": 0.5}


def test_group_is_checked_before_the_command_runs():
    seen: list = []
    result = runner.invoke(_app(seen), ["x", "-o", "o", "--min-cosine", "-1.5"])
    assert result.exit_code == 2 and "--min-cosine -1.5" in " ".join(result.output.split())
    result = runner.invoke(_app(seen), ["x", "-o", "o", "--max-abs", "-1"])
    assert result.exit_code == 2 and "--max-abs -1.0" in " ".join(result.output.split())
    assert seen == []
