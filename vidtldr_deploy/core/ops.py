"""`vidtldr::saliency` and `vidtldr::merge` as torch custom ops.

A model built with custom ops traces to one opaque node per merge step, which the ONNX export maps to
the `vidtldr` domain nodes (docs/design.md, "ONNX contract"). Eagerly they run the reference maths; the
fake implementations give torch.export / torch.compile the static output shapes.
"""

from __future__ import annotations

import torch

from vidtldr_deploy.core.merge import bipartite_merge
from vidtldr_deploy.core.saliency import saliency_from_qk


@torch.library.custom_op("vidtldr::saliency", mutates_args=())
def saliency(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    return saliency_from_qk(q, k, scale)


@saliency.register_fake
def _saliency_fake(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    return q.new_empty(q.shape[0], q.shape[2], dtype=torch.float32)


@torch.library.custom_op("vidtldr::merge", mutates_args=())
def merge(
    x: torch.Tensor, size: torch.Tensor, score: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if r <= 0:  # custom op outputs may not alias inputs: hand back copies
        return x.clone(), size.float().clone()
    x_out, size_out = bipartite_merge(x, size, score, r)
    return x_out.contiguous(), size_out.contiguous()


@merge.register_fake
def _merge_fake(
    x: torch.Tensor, size: torch.Tensor, score: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    b, n, c = x.shape
    return x.new_empty(b, n - r, c), x.new_empty(b, n - r, dtype=torch.float32)
