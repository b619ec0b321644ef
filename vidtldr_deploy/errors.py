"""The toolkit's error types, and the exit code each one means (docs/design.md, "Exit codes").

Every user-facing failure is raised as one of the kinds below (never the base VidTLDRError itself):
its message names the problem and the fix; the CLI prints it as one line and exits with the kind's
code, so scripts can tell a failed accuracy check (1) from bad input or a missing tool (2) and from
a runtime that failed on a well-formed input, or a bug (3).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class VidTLDRError(Exception):
    """The base of the kinds below; never raised itself, so every failure says what kind it is."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, *args: object) -> None:
        if type(self) is VidTLDRError:
            raise TypeError(
                "raise a kind of VidTLDRError (InputError, CheckFailed, ...), not the base"
            )
        super().__init__(*args)


class InputError(VidTLDRError):
    """A file, flag or value the toolkit cannot take."""


class EnvironmentProblem(VidTLDRError):
    """Something missing on this machine: a package, a GPU, a built library."""


class CheckFailed(VidTLDRError):
    """A validation or accuracy check ran and failed (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


class RuntimeFailure(VidTLDRError):
    """A runtime failed on an input the toolkit accepted: ONNX Runtime could not load or run a
    graph, TensorRT's parser or builder rejected it, a kernel or the Triton server returned an
    error (exit 3; the message names the runtime and what it said)."""

    exit_code = EXIT_INTERNAL


class InputErrors(InputError):
    """Several input problems found in one pass (HF Optimum-style): all are reported at once, so a
    user fixes a command line in one go instead of one rerun per flag."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


def with_note(err: VidTLDRError, note: str) -> VidTLDRError:
    """The same kind of error with a sentence added (say, what was kept and what was not written)."""
    kind = InputError if isinstance(err, InputErrors) else type(err)
    return kind(f"{err}\n{note}")


class ProblemCollector:
    """Collect input problems, then raise them together: `with ProblemCollector() as check: ...`."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def run(self, fn, *args, **kwargs):
        """Call fn; an InputError it raises is collected instead of propagated."""
        try:
            return fn(*args, **kwargs)
        except InputErrors as err:
            self.problems.extend(err.problems)
        except InputError as err:
            self.problems.append(str(err))
        return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputErrors(self.problems)

    def __enter__(self) -> ProblemCollector:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.raise_if_any()


_ANSI = None


def plain_text(text: object) -> str:
    """A message without terminal colour codes (torch's exporter and unpickler colour theirs), so a
    log or a JSON report never holds raw escapes."""
    global _ANSI
    import re

    if _ANSI is None:
        _ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
    return _ANSI.sub("", str(text))
