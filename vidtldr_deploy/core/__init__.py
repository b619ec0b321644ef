"""Pure vid-TLDR maths (docs/design.md, "vid-TLDR semantics"): no model, no export, no I/O."""

from vidtldr_deploy.core.merge import MergePlan, bipartite_merge, plan_merge, resolve_r
from vidtldr_deploy.core.saliency import (
    foreground_score,
    neg_entropy_from_attention,
    saliency_from_attention,
    saliency_from_qk,
)

__all__ = [
    "MergePlan",
    "bipartite_merge",
    "foreground_score",
    "neg_entropy_from_attention",
    "plan_merge",
    "resolve_r",
    "saliency_from_attention",
    "saliency_from_qk",
]
