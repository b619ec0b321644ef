"""Per-clip metrics of a merged model against the unmerged one: pure numpy, one row per clip.

Rows are clips; every function returns a (N,) array so that reports can keep the per-clip values
and averages are taken in one place (the caller). Arithmetic is float64 so that `none` against
itself is exactly drift 0 / agreement 1, not float32 rounding.
"""

from __future__ import annotations

import numpy as np


def _rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def cosine_rows(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Cosine similarity of each clip's vectors; two zero vectors count as identical (1.0)."""
    r, o = _rows(ref), _rows(out)
    denom = np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1)
    dots = np.einsum("nd,nd->n", r, o)
    same = np.all(r == o, axis=1)
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    # Identical rows are exactly 1: rounding in the norms must not make `none` drift.
    return np.where(same, 1.0, np.clip(cos, -1.0, 1.0))


def relative_l2_rows(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """||out - ref|| / ||ref|| per clip (the absolute difference when ref is zero)."""
    r, o = _rows(ref), _rows(out)
    diff = np.linalg.norm(o - r, axis=1)
    norm = np.linalg.norm(r, axis=1)
    return np.divide(diff, norm, out=diff.copy(), where=norm > 0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = _rows(logits)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def kl_rows(ref_logits: np.ndarray, out_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(ref) || softmax(out)) per clip, in nats: the unmerged model is the truth."""
    lp, lq = log_softmax(ref_logits), log_softmax(out_logits)
    kl = np.sum(np.exp(lp) * (lp - lq), axis=1)
    return np.maximum(kl, 0.0)  # tiny negatives are rounding, KL is never below 0


def topk_hits(ref_logits: np.ndarray, out_logits: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the unmerged top-1 class is among the merged model's top-k classes.

    The unmerged prediction plays the label (top-k accuracy against it); ties in the merged scores
    count in the class's favour only if it is not strictly outranked by k or more classes.
    """
    ref, out = _rows(ref_logits), _rows(out_logits)
    target = ref.argmax(axis=1)
    score = out[np.arange(len(out)), target]
    rank = np.sum(out > score[:, None], axis=1)  # classes strictly above the target
    return (rank < k).astype(np.float64)


def label_hits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where argmax(logits) equals the clip's label."""
    return (_rows(logits).argmax(axis=1) == np.asarray(labels)).astype(np.float64)


def _unit(a: np.ndarray) -> np.ndarray:
    a = _rows(a)
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
