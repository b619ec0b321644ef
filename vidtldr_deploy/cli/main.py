"""`vidtldr` and `vidtldr-export`: the app, assembled from one small module per command
(cli/commands/), each built from the argument groups in cli/args.py."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from vidtldr_deploy import __version__
from vidtldr_deploy.cli.args import APP_SETTINGS
from vidtldr_deploy.cli.commands import COMMANDS
from vidtldr_deploy.cli.console import DEBUG_ENV

app = typer.Typer(
    name="vidtldr",
    help="vid-TLDR token merging for video transformers: schedule, export to ONNX/TensorRT, validate, profile.",
    no_args_is_help=True,
    **APP_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        print(f"vidtldr-deploy {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the traceback of an internal error.")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


for register in COMMANDS:
    register(app)
# `vidtldr --help` lists each command with its whole summary, wrapped to the terminal: click cuts
# a summary it derives itself at 45 characters ("Run an exported graph (ONNX Runtime) or engine...").
for info in app.registered_commands:
    if info.short_help is None and info.callback is not None and info.callback.__doc__:
        info.short_help = " ".join(info.callback.__doc__.split("\n\n")[0].split())


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every `finally` (atomic outputs, temp folders) runs.
    raise KeyboardInterrupt


def _run(argv: list[str], prog_name: str) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app(args=argv, prog_name=prog_name)


def main() -> None:
    _run(sys.argv[1:], "vidtldr")


def export_main() -> None:
    """`vidtldr-export ...` is `vidtldr export ...`; its help names itself, not `vidtldr export`."""
    from vidtldr_deploy.cli.commands.export import export_app

    signal.signal(signal.SIGTERM, _terminate)
    if sys.argv[1:] == ["--version"]:  # a one-command app has no group callback to take it
        print(f"vidtldr-deploy {__version__}")
        return
    export_app(args=sys.argv[1:], prog_name="vidtldr-export")
