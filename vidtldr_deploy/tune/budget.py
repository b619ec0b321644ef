"""Budgets and the costs they bound: FLOPs (analytic, core/flops) or predicted latency (a fitted
per-block cost model). A cost is a function of the resolved per-layer r alone, so the search can
bound it without running the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vidtldr_deploy.core.flops import count_flops
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.vit import ViTConfig
from vidtldr_deploy.tune.cost_model import BlockCostModel

KINDS = ("flops", "speedup", "latency_ms")


@dataclass(frozen=True)
class Budget:
    """`flops`: merged <= value x unmerged FLOPs (0 < value < 1); `speedup`: FLOPs-ideal speedup
    >= value (> 1); `latency_ms`: predicted latency <= value milliseconds."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"budget kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not math.isfinite(self.value):  # inf would also be written to reports as Infinity
            flag = {"flops": "--target-flops", "speedup": "--target-speedup"}.get(
                self.kind, "--target-latency-ms"
            )
            raise InputError(f"{flag} must be a finite number, got {self.value}")
        if self.kind == "flops" and not 0 < self.value < 1:
            raise InputError(f"--target-flops must be in (0, 1), got {self.value}")
        if self.kind == "speedup" and not self.value > 1:
            raise InputError(f"--target-speedup must be > 1, got {self.value}")
        if self.kind == "latency_ms" and not self.value > 0:
            raise InputError(f"--target-latency-ms must be > 0, got {self.value}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    def describe(self) -> str:
        """The budget in words, as reports state it."""
        return {
            "flops": f"merged FLOPs at most {self.value:g} of the unmerged model's",
            "speedup": f"a FLOPs-ideal speedup of at least {self.value:g}x",
            "latency_ms": f"a predicted latency of at most {self.value:g} ms",
        }[self.kind]


class Cost(Protocol):
    """What a budget bounds, for a full per-layer list of resolved r."""

    unit: str

    def __call__(self, rs: Sequence[int]) -> float: ...


@dataclass(frozen=True)
class FlopsCost:
    cfg: ViTConfig
    frames: int
    unit: str = "flops"

    def __call__(self, rs: Sequence[int]) -> float:
        return float(count_flops(self.cfg, self.frames, list(rs)).merged)


@dataclass(frozen=True)
class LatencyCost:
    model: BlockCostModel
    n_tokens: int
    unit: str = "ms"

    def __call__(self, rs: Sequence[int]) -> float:
        return self.model.predict_ms(self.n_tokens, rs)


def cost_for(
    budget: Budget, cfg: ViTConfig, frames: int, n_tokens: int, cost_model: BlockCostModel | None
) -> Cost:
    if budget.kind == "latency_ms":
        if cost_model is None:
            raise InputError("a latency target needs a block cost model (fit_block_cost)")
        return LatencyCost(cost_model, n_tokens)
    return FlopsCost(cfg, frames)


def limit(budget: Budget, baseline_cost: float) -> float:
    """The largest cost that meets the budget, in the cost's own unit."""
    if budget.kind == "flops":
        return budget.value * baseline_cost
    if budget.kind == "speedup":
        return baseline_cost / budget.value
    return budget.value


def meets(cost: float, bound: float) -> bool:
    return cost <= bound * (1 + 1e-12)
