"""The fixed candidates every tune tries (published presets, RxL forms) and the token arithmetic
the search's bounds need. Schedules here are full-depth lists of resolved counts r."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from vidtldr_deploy.core.merge import resolve_r
from vidtldr_deploy.core.schedule import resolve_schedule

Rs = tuple[int, ...]

RXL_RATES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)  # fractions of the current tokens
RXL_LAYERS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24)
BEAM_FRACTIONS = (0.125, 0.25, 0.375, 0.5)


@dataclass(frozen=True)
class Named:
    form: str  # how it was written: a preset name or "RxL"
    rs: Rs


def pad(prefix: Sequence[int], depth: int) -> Rs:
    return tuple(int(r) for r in prefix) + (0,) * (depth - len(prefix))


def tokens_after(n_tokens: int, prefix: Sequence[int]) -> int:
    return n_tokens - sum(int(r) for r in prefix)


def max_completion(
    prefix: Sequence[int], n_tokens: int, depth: int, last_layer: int, fraction: float
) -> Rs:
    """`prefix` followed by the most merging the search may still do (r = fraction of the current
    tokens up to layer `last_layer` exclusive): the cheapest schedule the prefix can lead to."""
    rs, n = list(prefix), tokens_after(n_tokens, prefix)
    for _ in range(len(prefix), max(last_layer, len(prefix))):
        r = resolve_r(fraction, n)
        rs.append(r)
        n -= r
    return pad(rs, depth)


def fitting_presets(
    presets: Mapping[str, Sequence[float]], depth: int, n_tokens: int, allow_clamped: bool = False
) -> tuple[list[Named], dict[str, str]]:
    """Presets that fit the model as published (no more layers than it has, no r clamped to half
    the tokens: published r are for 12 frames), resolved; and why each other one was left out.
    `allow_clamped` keeps clamped presets too (as the CLI would run them), named "<name>~"."""
    fit, skipped = [], {}
    for name, values in presets.items():
        if len(values) > depth:
            skipped[name] = f"{len(values)} layers, the model has {depth}"
            continue
        sched = resolve_schedule(",".join(map(str, values)), depth, n_tokens)
        clamped = [row.layer for row in sched.layers if row.clamped]
        if clamped and not allow_clamped:
            skipped[name] = (
                f"r clamped to half the tokens at layer(s) {clamped} ({n_tokens} tokens)"
            )
            continue
        fit.append(Named(f"{name}~" if clamped else name, tuple(sched.rs)))
    return fit, skipped


def rxl(rate: float, layers: int, depth: int, n_tokens: int) -> Named:
    spec = f"{rate:g}x{layers}"
    return Named(spec, tuple(resolve_schedule(spec, depth, n_tokens).rs))


def rxl_grid(
    rates: Iterable[float], layers: Iterable[int], depth: int, n_tokens: int
) -> list[list[Named]]:
    """RxL candidates, one list per rate with L ascending (duplicates and r = 0 dropped)."""
    seen: set[Rs] = set()
    out = []
    for rate in rates:
        row = []
        for n_layers in sorted(x for x in set(layers) if 1 <= x <= depth):
            cand = rxl(rate, n_layers, depth, n_tokens)
            if any(cand.rs) and cand.rs not in seen:
                seen.add(cand.rs)
                row.append(cand)
        out.append(row)
    return out
