"""The terminal: results on stdout, messages and progress on stderr, and one place that turns an
exception into a message and an exit code (docs/design.md, "Exit codes")."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import traceback

import typer
from rich.console import Console
from rich.markup import escape  # messages quote paths and extras like [gpu]: never markup

from vidtldr_deploy.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, VidTLDRError

console = Console(stderr=True)
out = Console()

DEBUG_ENV = "VIDTLDR_DEBUG"


def info(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def status(text: str):
    """A spinner on a terminal; one plain line in logs, so CI shows what is running."""
    if console.is_terminal:
        return console.status(escape(text))
    info(f"{text} ...")
    return contextlib.nullcontext()


def error(text: str) -> None:
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)


def guarded(fn):
    """Run a command so that every way out has its exit code: a VidTLDRError prints one message
    and exits with its kind's code (1 check failed, 2 bad input or environment, 3 a runtime
    failure); Ctrl-C or SIGTERM
    exits 130 after the `finally` blocks removed what was half-written; anything else is a bug:
    one line, exit 3, the traceback with --debug (or VIDTLDR_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except VidTLDRError as err:
            error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted: nothing half-written was left behind")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as err:  # noqa: BLE001 - the last line of defence: a bug, said as one
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc(file=sys.stderr)
            first = (str(err).splitlines() or [""])[0]
            error(
                f"internal error: {type(err).__name__}: {first} (rerun with --debug for the traceback)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def steps(n: int) -> str:
    """ "1 step", "3 steps"."""
    return f"{n} step" + ("s" if n != 1 else "")


HEARTBEAT_S = 10.0  # off a terminal, a running phase prints a plain line at most this often


def rich_progress_callback(progress, clock=time.monotonic):
    """A library progress callback backed by one rich Progress: one bar per phase. Off a terminal
    (CI logs) each phase is also printed as one line, and a long phase prints where it stands at
    most every HEARTBEAT_S seconds, so a log never sits silent for minutes."""
    state = {"task": None}

    def phase(description: str, total: int):
        if state["task"] is not None:
            progress.remove_task(state["task"])
        plain = not console.is_terminal
        if plain:
            info(f"{description} ({steps(total)})")
        state["task"] = progress.add_task(description, total=total)
        task = state["task"]
        started = last = clock()
        done = 0

        def advance() -> None:
            nonlocal last, done
            progress.advance(task)
            done += 1
            now = clock()
            if plain and now - last >= HEARTBEAT_S:
                last = now
                info(f"  {description}: {done}/{steps(total)}, {now - started:.0f} s")

        return advance

    return phase
