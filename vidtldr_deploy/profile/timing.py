"""The interleaved timing loop: every model runs once per iteration, in ABBA order, so that drift
(clocks, thermals, other processes) hits all of them alike (docs/design.md, "Profiling")."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vidtldr_deploy.errors import InputError


@dataclass
class TimedModel:
    """One model to time: `step` runs one batch to completion (synchronised)."""

    label: str
    step: Callable[[], object]
    before: Callable[[], None] | None = None  # outside the timed window (e.g. reset peak memory)
    after: Callable[[], None] | None = None
    peak_memory: Callable[[], float | None] = lambda: None  # MiB, where the runtime tells it
    close: Callable[[], None] | None = None
    rss_delta_mb: float | None = None


Advance = Callable[[], None]
PhaseCallback = Callable[[str, int], Advance]  # (description, total steps) -> advance()


def no_progress(description: str, total: int) -> Advance:
    return lambda: None


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _timed_iteration(
    candidates: Sequence[TimedModel], i: int, times: dict[str, list[float]], advance: Advance
) -> None:
    order = candidates if i % 2 == 0 else list(reversed(candidates))
    for c in order:
        if c.before:
            c.before()
        t0 = time.perf_counter()
        c.step()
        times[c.label].append(time.perf_counter() - t0)
        if c.after:
            c.after()
        advance()


def interleaved_timing(
    candidates: Sequence[TimedModel],
    iterations: int,
    warmup: int,
    progress: PhaseCallback = no_progress,
    duration: float | None = None,
) -> dict[str, list[float]]:
    """Warm each candidate up, then time them interleaved: iteration i runs every candidate once,
    in order on even i and reversed on odd i (ABBA), so slow drift and order effects cancel.

    With `duration` (seconds), timing is time-boxed as trtexec's --duration: at least `iterations`
    iterations, then more until `duration` seconds of timing have passed (whole ABBA pairs, so
    both orders stay balanced). Returns the wall times in seconds per label. The RSS growth over
    each candidate's first warm-up call is stored on it as `rss_delta_mb` (where RSS can be read).
    """
    if iterations < 1:
        raise InputError(f"--iterations must be at least 1, got {iterations}")
    if warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {warmup}")
    if duration is not None and duration <= 0:
        raise InputError(f"--duration must be positive seconds, got {duration}")
    advance = progress("warm-up", max(1, warmup) * len(candidates))
    for c in candidates:
        before = rss_bytes()
        for i in range(max(1, warmup)):  # at least one call: first-call costs never get timed
            c.step()
            if i == 0 and before is not None:
                now = rss_bytes()
                c.rss_delta_mb = None if now is None else (now - before) / 2**20
            advance()
    times: dict[str, list[float]] = {c.label: [] for c in candidates}
    what = (
        "timing (interleaved)" if duration is None else f"timing (interleaved, >= {duration:g} s)"
    )
    advance = progress(what, iterations * len(candidates))
    start = time.perf_counter()
    i = 0
    while i < iterations or (
        duration is not None and (time.perf_counter() - start < duration or i % 2)
    ):
        _timed_iteration(candidates, i, times, advance)
        i += 1
    return times
