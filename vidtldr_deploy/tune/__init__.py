"""Tune: the merge schedule with the least drift for a FLOPs, speedup or latency budget.
See search.py for the search and why."""

from __future__ import annotations

from vidtldr_deploy.tune.activations import PrefixRunner
from vidtldr_deploy.tune.budget import Budget
from vidtldr_deploy.tune.cost_model import (
    BlockCostModel,
    default_token_counts,
    fit_block_cost,
    openvino_cost_model,
    torch_block_timer,
    torch_cost_model,
    torch_fixed_ms,
)
from vidtldr_deploy.tune.export_config import write_export_config, write_tuned_config
from vidtldr_deploy.tune.plot import plot_pareto
from vidtldr_deploy.tune.search import (
    Candidate,
    SearchOptions,
    TuneProgress,
    TuneResult,
    drift_of,
    tune,
    tune_methods,
)

__all__ = [
    "BlockCostModel",
    "Budget",
    "Candidate",
    "PrefixRunner",
    "SearchOptions",
    "TuneProgress",
    "TuneResult",
    "default_token_counts",
    "drift_of",
    "fit_block_cost",
    "plot_pareto",
    "torch_block_timer",
    "openvino_cost_model",
    "torch_cost_model",
    "torch_fixed_ms",
    "tune",
    "tune_methods",
    "write_export_config",
    "write_tuned_config",
]
