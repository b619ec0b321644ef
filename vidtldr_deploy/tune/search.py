"""The schedule for a budget: the least drift on calibration clips among schedules that meet it.

Search (why this one). Each evaluation of a schedule costs forward passes, so the search spends
them where the answer can be, and every evaluation is of a complete schedule:
1. Fixed candidates first: the architecture's published presets that fit the model, and RxL forms
   (r = a fraction R of the current tokens in each of the first L layers) over a grid of R; for
   each R, the fewest layers L that meet the budget (`rxl_per_rate` of them, L ascending: more
   layers at one rate only merge more). The best of these meeting the budget is the incumbent, so
   the result is never worse than any of them.
2. A beam search over per-layer r from layer 0, r in a coarse grid of fractions of the current
   tokens (and 0: a merge may be delayed). A partial schedule is scored as the complete schedule
   that merges no more after it, which is itself a candidate, and its `(p, 0)` child is free.
   Branches are pruned when even the most merging still allowed (the largest fraction in every
   remaining searchable layer) cannot meet the budget (the cost is monotone in the tokens, so this
   is a true lower bound), and, heuristically (more merging rarely reduces drift), when their
   drift already reaches the incumbent's or they already meet the budget; in both cases a larger
   r at that layer is not tried either. Of the rest, the beam keeps `beam_width` schedules spread
   along the Pareto front of (cost, drift), so it holds both cautious and aggressive prefixes
   rather than the lowest-drift ones only, which would all be the unmerged prefix until the
   budget forces merging late, where it is least effective.
Activations are shared through PrefixRunner (candidates with a common prefix run it once; the
unmerged prefix runs once), and a KeyboardInterrupt ends the search with the best so far that
meets the budget (or propagates when none does yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.core.flops import count_flops
from vidtldr_deploy.core.merge import resolve_r
from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.evaluate import metrics
from vidtldr_deploy.evaluate.targets import iter_batches, primary_output, schedule_string
from vidtldr_deploy.models.presets import PRESETS
from vidtldr_deploy.models.vit import MergeViT
from vidtldr_deploy.tune import candidates as cands
from vidtldr_deploy.tune.activations import PrefixRunner
from vidtldr_deploy.tune.budget import Budget, Cost, cost_for, limit, meets
from vidtldr_deploy.tune.cost_model import BlockCostModel

Rs = tuple[int, ...]


@dataclass(frozen=True)
class SearchOptions:
    beam_width: int = 3
    fractions: tuple[float, ...] = cands.BEAM_FRACTIONS
    max_layers: int | None = None  # layers the beam may merge in; None: max(2, depth // 3)
    rxl_rates: tuple[float, ...] = cands.RXL_RATES
    rxl_layers: tuple[int, ...] = cands.RXL_LAYERS
    rxl_per_rate: int = 1  # feasible L tried per rate, fewest layers first
    clamped_presets: bool = False  # also try presets whose r the token count clamps
    cache_mib: int = 1024

    def searchable(self, depth: int) -> int:
        return min(depth, self.max_layers or max(2, depth // 3))


@dataclass(frozen=True)
class Candidate:
    rs: Rs
    form: str  # "preset:<name>", "RxL", "beam", "none"
    cost: float  # in the budget's unit (FLOPs or predicted ms)
    flops_ratio: float
    drift: float
    meets_budget: bool
    latency_ms: float | None = None
    accuracy: float | None = None  # with labels: share of the labeled clips classified right

    @property
    def schedule(self) -> str:
        return schedule_string(self.rs)

    def to_dict(self) -> dict:
        out = {
            "schedule": self.schedule,
            "form": self.form,
            "flops_ratio": self.flops_ratio,
            "drift": self.drift,
            "meets_budget": self.meets_budget,
        }
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy
        return out


@dataclass(frozen=True)
class TuneProgress:
    phase: str  # "presets", "rxl", "beam"
    evaluated: int
    candidate: Candidate
    best: Candidate | None
    layer: int | None = None  # the beam's layer


Progress = Callable[[TuneProgress], None]


@dataclass
class TuneResult:
    arch: str
    frames: int
    output: str
    names: tuple[str, ...]
    budget: Budget
    limit: float  # the largest cost meeting the budget, in the cost's unit
    best: Candidate
    candidates: list[Candidate]
    presets: list[Candidate]
    presets_skipped: dict[str, str]
    interrupted: bool
    seconds_prefix: float
    seconds_search: float
    block_calls: int
    options: SearchOptions
    depth: int
    n_tokens: int
    cost_model: BlockCostModel | None = None
    flops: dict = field(default_factory=dict)
    labeled: int = 0  # clips with a label: > 0 makes accuracy the objective
    baseline_accuracy: float | None = None
    method: str = "vidtldr"  # the merge method the schedule was searched (and is exported) with
    by_method: dict = field(default_factory=dict)  # tune_methods: each method's best

    @property
    def schedule(self) -> str:
        return self.best.schedule

    @property
    def objective(self) -> str:
        drift = (
            "mean KL(softmax unmerged || merged)"
            if self.output == "logits"
            else "1 - mean cosine of pooled"
        )
        if self.labeled:
            return f"accuracy on {self.labeled} labeled clips (ties: least {drift})"
        return drift

    def pareto(self) -> list[Candidate]:
        """Evaluated schedules no other one beats on both cost and drift, cheapest first."""
        front: list[Candidate] = []
        for c in sorted(self.candidates, key=lambda c: (c.cost, c.drift)):
            if not front or c.drift < front[-1].drift:
                front.append(c)
        return front

    def to_dict(self) -> dict:
        latency = self.budget.kind == "latency_ms"
        resolved = resolve_schedule(self.schedule, self.depth, self.n_tokens)
        out = {
            "kind": "tune",
            "arch": self.arch,
            "frames": self.frames,
            "output": self.output,
            "objective": self.objective,
            "method": self.method,
            "clips": {"count": len(self.names), "names": list(self.names)},
            "target": self.budget.to_dict(),
            "limit": self.limit,
            "schedule": self.schedule,
            "layers": resolved.to_dict()["layers"],
            "meets_budget": self.best.meets_budget,
            "flops": self.flops,
            "drift": self.best.drift,
            "pareto": [_point(c, latency) for c in self.pareto()],
            "presets": [
                {
                    "name": c.form.removeprefix("preset:"),
                    **_point(c, latency),
                    "meets_budget": c.meets_budget,
                }
                for c in self.presets
            ],
            "presets_skipped": self.presets_skipped,
            "candidates_evaluated": len(self.candidates),
            "candidates": [c.to_dict() for c in self.candidates],
            "interrupted": self.interrupted,
            "seconds": {"prefix": self.seconds_prefix, "search": self.seconds_search},
            "block_calls": {"run": self.block_calls, "naive": self.depth * len(self.candidates)},
            "options": asdict(self.options),
        }
        if self.by_method:
            out["methods"] = self.by_method
        if self.labeled:
            out["accuracy"] = self.best.accuracy
            out["baseline_accuracy"] = self.baseline_accuracy
        if latency:
            out["latency_ms"] = self.best.latency_ms
            if self.cost_model is not None:
                out["cost_model"] = self.cost_model.to_dict()
        return out


def _point(c: Candidate, latency: bool) -> dict:
    out = {"schedule": c.schedule, "flops_ratio": c.flops_ratio, "drift": c.drift}
    if latency:
        out["latency_ms"] = c.latency_ms
    return out


def drift_of(ref: np.ndarray, out: np.ndarray, classifier: bool) -> float:
    """The objective: mean KL of the class distributions, or 1 - mean cosine of pooled vectors."""
    if classifier:
        return float(metrics.kl_rows(ref, out).mean())
    return float(1.0 - metrics.cosine_rows(ref, out).mean())


class _Search:
    """State of one tune: the evaluated candidates, the incumbent, and the shared activations."""

    def __init__(
        self,
        model,
        runner,
        cost: Cost,
        bound: float,
        progress: Progress | None,
        labels: np.ndarray | None = None,
    ):
        self.model, self.runner, self.cost, self.bound = model, runner, cost, bound
        # (clip index, class) of the labeled clips: with any, accuracy is the objective.
        self.labels = labels
        self.depth, self.n_tokens = model.cfg.depth, model.num_tokens
        self.classifier = model.head is not None
        self.progress = progress
        self.ref = runner.output((0,) * self.depth)
        self.seen: dict[Rs, Candidate] = {}
        self.order: list[Candidate] = []
        self.best: Candidate | None = None
        self.latency = getattr(cost, "unit", "") == "ms"

    def evaluate(self, rs: Sequence[int], form: str, phase: str, layer: int | None = None):
        rs = cands.pad(rs, self.depth)
        if rs in self.seen:
            return self.seen[rs]
        out = self.runner.output(rs)
        cost = self.cost(rs)
        flops = count_flops(self.model.cfg, self.model.frames, list(rs))
        cand = Candidate(
            rs=rs,
            form=form,
            cost=cost,
            flops_ratio=flops.ratio,
            drift=drift_of(self.ref, out, self.classifier),
            meets_budget=meets(cost, self.bound),
            latency_ms=cost if self.latency else None,
            accuracy=self.accuracy_of(out),
        )
        self.seen[rs] = cand
        self.order.append(cand)
        if cand.meets_budget and (self.best is None or _better(cand, self.best)):
            self.best = cand
        if self.progress:
            self.progress(TuneProgress(phase, len(self.order), cand, self.best, layer))
        return cand

    def accuracy_of(self, out: np.ndarray) -> float | None:
        if self.labels is None:
            return None
        index, y = self.labels[:, 0], self.labels[:, 1]
        return float(metrics.label_hits(out[index], y).mean())

    def lower_bound(self, prefix: Sequence[int], last_layer: int, fraction: float) -> float:
        return self.cost(
            cands.max_completion(prefix, self.n_tokens, self.depth, last_layer, fraction)
        )

    def run_rxl(self, rows: Iterable[list[cands.Named]], per_rate: int) -> None:
        """The `per_rate` fewest-layer RxL of each rate R that meet the budget: more layers at the
        same rate only merge more, so the fewest that suffice are the ones likely to drift least."""
        for row in rows:
            feasible = [c for c in row if meets(self.cost(c.rs), self.bound)]
            for cand in feasible[:per_rate]:
                self.evaluate(cand.rs, cand.form, "rxl")

    def run_beam(self, options: SearchOptions) -> None:
        last = options.searchable(self.depth)
        top = max(options.fractions)
        frontier: list[tuple[Rs, Candidate]] = [((), self.seen[(0,) * self.depth])]
        for layer in range(last):
            children: list[tuple[Rs, Candidate]] = []
            for prefix, parent in frontier:
                n = cands.tokens_after(self.n_tokens, prefix)
                rs_here = sorted({resolve_r(f, n) for f in options.fractions} | {0})
                for r in rs_here:  # ascending
                    child = prefix + (r,)
                    if self.lower_bound(child, last, top) > self.bound * (1 + 1e-12):
                        continue  # cannot meet the budget whatever follows
                    cand = parent if r == 0 else self.evaluate(child, "beam", "beam", layer)
                    if cand.meets_budget:
                        break  # a candidate; a larger r here or more merging would add drift
                    if self.best is not None and cand.drift >= self.best.drift:
                        break  # cannot beat the incumbent, and a larger r would drift more
                    children.append((child, cand))
            frontier = spread_front(children, options.beam_width)
            if not frontier:
                break


def _better(a: Candidate, b: Candidate) -> bool:
    """Higher accuracy (when labels make it the objective), then less drift, then less cost."""
    return (-(a.accuracy or 0.0), a.drift, a.cost) < (-(b.accuracy or 0.0), b.drift, b.cost)


def spread_front(items: list[tuple[Rs, Candidate]], width: int) -> list[tuple[Rs, Candidate]]:
    """Up to `width` items of the (cost, drift) Pareto front, evenly spaced from the cheapest to
    the least drifting, so the beam keeps both aggressive and cautious prefixes."""
    front: list[tuple[Rs, Candidate]] = []
    for item in sorted(items, key=lambda it: (it[1].cost, it[1].drift, it[0])):
        if not front or item[1].drift < front[-1][1].drift:
            front.append(item)
    if len(front) <= width:
        return front
    picks = sorted({round(i) for i in np.linspace(0, len(front) - 1, width)})
    return [front[i] for i in picks]


def calibration_batch(clips: np.ndarray | Iterable[np.ndarray], model: MergeViT) -> torch.Tensor:
    video = np.concatenate(list(iter_batches(clips)))
    param = next(model.parameters())
    return torch.from_numpy(video).to(device=param.device, dtype=param.dtype)


def tune(
    model: MergeViT,
    clips: np.ndarray | Iterable[np.ndarray],
    budget: Budget,
    *,
    arch: str | None = None,
    names: Sequence[str] | None = None,
    presets: Mapping[str, Sequence[float]] | None = None,
    cost_model: BlockCostModel | None = None,
    options: SearchOptions = SearchOptions(),
    progress: Progress | None = None,
    labels: Sequence[int | None] | None = None,
) -> TuneResult:
    """The schedule with the least drift on `clips` (calibration, (N, 3, T, H, W) float32) whose
    cost meets `budget`. `presets` defaults to the architecture's published ones; a latency
    budget needs `cost_model` (fit_block_cost, torch_cost_model). Ctrl-C during the search returns
    the best found so far that meets the budget, marked interrupted; before any candidate met it,
    the KeyboardInterrupt propagates: there is nothing to return yet. `labels` (a class or None per
    clip) make the objective the accuracy on the labeled clips, ties broken by drift."""
    arch = arch or ""
    depth, n_tokens = model.cfg.depth, model.num_tokens
    cost = cost_for(budget, model.cfg, model.frames, n_tokens, cost_model)
    bound = limit(budget, cost((0,) * depth))
    cheapest = cost(cands.max_completion((), n_tokens, depth, depth, 0.5))
    if cheapest > bound:
        raise InputError(
            f"no schedule meets {budget.kind} {budget.value}: even merging half the tokens in "
            f"every layer costs {cheapest:.4g} {cost.unit} against a limit of {bound:.4g}"
        )
    video = calibration_batch(clips, model)
    names = tuple(names) if names is not None else tuple(f"clip{i}" for i in range(len(video)))
    if len(names) != len(video):
        raise InputError(f"{len(video)} calibration clips but {len(names)} names")
    runner = PrefixRunner(model, video, options.cache_mib << 20)
    fit, skipped = cands.fitting_presets(
        PRESETS.get(arch, {}) if presets is None else presets,
        depth,
        n_tokens,
        options.clamped_presets,
    )
    start = time.perf_counter()
    known = [(i, y) for i, y in enumerate(labels or []) if y is not None]
    label_rows = np.array(known, dtype=np.int64) if known else None
    # runs the unmerged prefix once
    search = _Search(model, runner, cost, bound, progress, label_rows)
    prefix_s = time.perf_counter() - start
    interrupted = False
    try:
        search.evaluate((0,) * depth, "none", "prefix")
        for p in fit:
            search.evaluate(p.rs, f"preset:{p.form}", "presets")
        rxl = cands.rxl_grid(options.rxl_rates, options.rxl_layers, depth, n_tokens)
        search.run_rxl(rxl, options.rxl_per_rate)
        search.run_beam(options)
    except KeyboardInterrupt:
        if search.best is None:
            raise  # nothing meets the budget yet: there is no result to return
        interrupted = True
    # Every preset under its own name, also those resolving to a schedule evaluated before.
    preset_cands = [
        replace(search.seen[cands.pad(p.rs, depth)], form=f"preset:{p.form}")
        for p in fit
        if cands.pad(p.rs, depth) in search.seen
    ]
    search_s = time.perf_counter() - start - prefix_s
    best = search.best or min(search.order, key=lambda c: c.cost)  # nothing met it: cheapest
    flops = count_flops(model.cfg, model.frames, list(best.rs))
    return TuneResult(
        arch=arch,
        frames=model.frames,
        output=primary_output(model),
        names=names,
        budget=budget,
        limit=bound,
        best=best,
        candidates=list(search.order),
        presets=preset_cands,
        presets_skipped=skipped,
        interrupted=interrupted,
        seconds_prefix=prefix_s,
        seconds_search=search_s,
        block_calls=runner.block_calls,
        options=options,
        depth=depth,
        n_tokens=n_tokens,
        cost_model=cost_model,
        flops={"merged": flops.merged, "baseline": flops.baseline, "ratio": flops.ratio},
        labeled=len(known),
        baseline_accuracy=search.accuracy_of(search.ref),
        method=model.method.value,
    )


def tune_methods(
    model: MergeViT,
    clips: np.ndarray | Iterable[np.ndarray],
    budget: Budget,
    methods: Sequence[MergeMethod],
    **kwargs,
) -> TuneResult:
    """`tune` once per merge method (vid-TLDR, ToMe); the result of the method whose best schedule
    wins on the objective, with every method's best under `by_method`. The model's own method is
    restored afterwards."""
    if MergeMethod.RANDOM in methods:
        raise InputError("tune searches vidtldr and tome; random merging is a baseline only")
    saved = model.method
    results: list[TuneResult] = []
    try:
        for method in methods:
            model.method = method
            results.append(tune(model, clips, budget, **kwargs))
            if results[-1].interrupted:
                break
    finally:
        model.method = saved
    # Meeting the budget first, then the objective (as _better), then the order given.
    best = min(
        results,
        key=lambda r: (
            not r.best.meets_budget,
            -(r.best.accuracy or 0.0),
            r.best.drift,
            r.best.cost,
        ),
    )
    best.by_method = {
        r.method: {
            "schedule": r.schedule,
            "flops_ratio": r.best.flops_ratio,
            "drift": r.best.drift,
            "accuracy": r.best.accuracy,
            "meets_budget": r.best.meets_budget,
        }
        for r in results
    }
    return best
