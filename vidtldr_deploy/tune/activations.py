"""Block-by-block forward passes that share work between schedules with a common prefix.

The hidden state (x, size) after layer k depends only on r_0..r_{k-1}, so states are cached under
that tuple: a schedule starts from its longest cached prefix and runs only the layers after it.
The all-zero prefixes (the unmerged model, which every schedule shares up to its first merge) are
pinned; every other state lives in an LRU bounded in bytes, so memory stays bounded however many
candidates are tried (an evicted state is recomputed from its nearest cached ancestor). Blocks
run clips_per_pass clips at a time (models/memory.py), so the attention maps of a block (clips x heads x N x N, the largest
tensors of a forward pass) do not grow with the number of calibration clips; the cached states
(clips x N x dim per layer) do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidtldr_deploy.models.memory import clips_per_pass
from vidtldr_deploy.models.vit import MergeViT

Key = tuple[int, ...]


@dataclass(frozen=True)
class State:
    x: torch.Tensor
    size: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.size is None else self.size.numel() * self.size.element_size()
        return self.x.numel() * self.x.element_size() + extra


class PrefixRunner:
    """Outputs of `model` on one batch of clips under any schedule, reusing cached prefixes."""

    def __init__(
        self,
        model: MergeViT,
        video: torch.Tensor,
        max_cache_bytes: int = 1 << 30,
        chunk: int | None = None,
    ):
        self.model = model
        self.video = video
        self.chunk = max(1, chunk if chunk is not None else clips_per_pass(model))
        self.depth = model.cfg.depth
        self.max_cache_bytes = max_cache_bytes
        self.block_calls = 0  # how many blocks were run, for reporting and tests
        self._pinned: dict[Key, State] = {}
        self._lru: OrderedDict[Key, State] = OrderedDict()
        self._lru_bytes = 0

    def _embed(self) -> State:
        with torch.inference_mode():
            x = torch.cat([self.model.embed(v) for v in self.video.split(self.chunk)])
        return State(x, None)

    def _block(self, k: int, state: State, r: int) -> State:
        """Block k with r merges, `chunk` clips at a time."""
        xs = state.x.split(self.chunk)
        sizes = state.size.split(self.chunk) if state.size is not None else [None] * len(xs)
        method = self.model.method
        parts = [
            self.model.blocks[k](x, size, r, "reference", method) for x, size in zip(xs, sizes)
        ]
        x = torch.cat([p[0] for p in parts])
        size = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return State(x, size)

    def _lookup(self, key: Key) -> State | None:
        if key in self._pinned:
            return self._pinned[key]
        if key in self._lru:
            self._lru.move_to_end(key)
            return self._lru[key]
        return None

    def _store(self, key: Key, state: State) -> None:
        if not any(key):
            self._pinned[key] = state  # the unmerged prefix: shared by every schedule
            return
        self._lru[key] = state
        self._lru_bytes += state.nbytes
        while self._lru_bytes > self.max_cache_bytes and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._lru_bytes -= old.nbytes

    def state(self, prefix: Sequence[int]) -> State:
        """Hidden state after len(prefix) layers run with r = prefix[i]."""
        prefix = tuple(int(r) for r in prefix)
        start, state = 0, None
        for k in range(len(prefix), -1, -1):
            state = self._lookup(prefix[:k])
            if state is not None:
                start = k
                break
        if state is None:
            state = self._embed()
            self._store((), state)
        with torch.inference_mode():
            for k in range(start, len(prefix)):
                state = self._block(k, state, prefix[k])
                self.block_calls += 1
                self._store(prefix[: k + 1], state)
        return state

    def output(self, rs: Sequence[int]) -> np.ndarray:
        """The primary output (pooled, or logits for a classifier) under the full schedule rs."""
        if len(rs) != self.depth:
            raise ValueError(f"schedule has {len(rs)} layers, the model has {self.depth}")
        state = self.state(rs)
        with torch.inference_mode():
            outputs = self.model.finish(state.x, state.size)
            out = outputs[0] if self.model.head is not None else outputs[1]
        return out.float().numpy()

    @property
    def cached_bytes(self) -> int:
        return self._lru_bytes + sum(s.nbytes for s in self._pinned.values())
