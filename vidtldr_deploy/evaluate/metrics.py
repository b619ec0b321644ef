"""Per-clip metrics of a merged model against the unmerged one: pure numpy, one row per clip.

Rows are clips; every function returns a (N,) array so that reports can keep the per-clip values
and averages are taken in one place (the caller). Arithmetic is float64 so that `none` against
itself is exactly drift 0 / agreement 1, not float32 rounding.
"""

from __future__ import annotations

import numpy as np

# cosine, rel_l2 and top-k have one definition, the one validate uses too.
from vidtldr_deploy.validate.metrics import clip_rows, cosine_rows, relative_l2_rows, topk_hits

__all__ = ["cosine_rows", "relative_l2_rows", "topk_hits", "kl_rows", "label_hits",
           "retrieval_ranks", "recall_at", "log_softmax"]  # fmt: skip


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = clip_rows(logits)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def kl_rows(ref_logits: np.ndarray, out_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(ref) || softmax(out)) per clip, in nats: the unmerged model is the truth."""
    lp, lq = log_softmax(ref_logits), log_softmax(out_logits)
    kl = np.sum(np.exp(lp) * (lp - lq), axis=1)
    return np.maximum(kl, 0.0)  # tiny negatives are rounding, KL is never below 0


def label_hits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where argmax(logits) equals the clip's label."""
    return (clip_rows(logits).argmax(axis=1) == np.asarray(labels)).astype(np.float64)


def _unit(a: np.ndarray) -> np.ndarray:
    a = clip_rows(a)
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def retrieval_ranks(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """0-based rank of gallery[i] among all gallery rows for query i, by cosine similarity.

    The rank counts rows strictly more similar than the matching one, so exact ties (identical
    embeddings) are resolved in the match's favour and `none` retrieves itself at rank 0.
    """
    g, q = _unit(gallery), _unit(queries)
    sim = q @ g.T
    own = np.diag(sim)
    return np.sum(sim > own[:, None], axis=1)


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(np.asarray(ranks) < k)) if len(ranks) else 0.0
