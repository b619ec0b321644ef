"""Block-by-block forward passes that share work between schedules with a common prefix.

The hidden state (x, size) after layer k depends only on r_0..r_{k-1}, so states are cached under
that tuple: a schedule starts from its longest cached prefix and runs only the layers after it.
The clips are taken a chunk at a time (clips_per_pass of them, models/memory.py, or the chunks
given, e.g. clips/spill.py's), and states are cached per chunk, so neither the attention maps
of a block (clips x heads x N x N) nor the cached states grow with the number of clips. The
cache is bounded in bytes: the all-zero prefixes (the unmerged model, which every schedule
shares up to its first merge) are kept first, in up to half of it, in chunk order (the search
reads the chunks in order, so keeping the first ones rather than the latest ones is what saves
work once they do not all fit); every other state lives in an LRU in the rest. An evicted or
never-kept state is recomputed from its nearest cached ancestor: caching saves work, it never
changes an output.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidtldr_deploy.models.memory import clips_per_pass
from vidtldr_deploy.models.vit import MergeViT

Key = tuple[int, tuple[int, ...]]  # (chunk, prefix)


@dataclass(frozen=True)
class State:
    x: torch.Tensor
    size: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.size is None else self.size.numel() * self.size.element_size()
        return self.x.numel() * self.x.element_size() + extra


class PrefixRunner:
    """Outputs of `model` on clips under any schedule, reusing cached prefixes. `clips` is one
    (N, 3, T, H, W) tensor or array, run `chunk` clips at a time, or a sequence of such chunks
    (read again on each pass, so they may live on disk)."""

    def __init__(
        self,
        model: MergeViT,
        clips: torch.Tensor | np.ndarray | Sequence[np.ndarray],
        max_cache_bytes: int = 1 << 30,
        chunk: int | None = None,
    ):
        self.model = model
        step = max(1, chunk if chunk is not None else clips_per_pass(model))
        if isinstance(clips, (torch.Tensor, np.ndarray)):
            clips = [clips[i : i + step] for i in range(0, len(clips), step)]
        self.chunks = clips
        self.depth = model.cfg.depth
        self.max_cache_bytes = max_cache_bytes
        self.block_calls = 0  # blocks run, one chunk each, for reporting and tests
        self._pinned: dict[Key, State] = {}
        self._pinned_bytes = 0
        self._lru: OrderedDict[Key, State] = OrderedDict()
        self._lru_bytes = 0

    @property
    def count(self) -> int:
        """The clips in all chunks (a chunk store that knows it says so without reading them)."""
        known = getattr(self.chunks, "count", None)
        if isinstance(known, int):
            return known
        return sum(len(self.chunks[i]) for i in range(len(self.chunks)))

    def _embed(self, chunk: int) -> State:
        param = next(self.model.parameters())
        video = torch.as_tensor(self.chunks[chunk]).to(device=param.device, dtype=param.dtype)
        with torch.inference_mode():
            return State(self.model.embed(video), None)

    def _lookup(self, key: Key) -> State | None:
        if key in self._pinned:
            return self._pinned[key]
        if key in self._lru:
            self._lru.move_to_end(key)
            return self._lru[key]
        return None

    def _store(self, key: Key, state: State) -> None:
        if not any(key[1]):
            # the unmerged prefix, shared by every schedule: kept while it fits in its half
            if self._pinned_bytes + state.nbytes <= self.max_cache_bytes // 2:
                self._pinned[key] = state
                self._pinned_bytes += state.nbytes
            return
        self._lru[key] = state
        self._lru_bytes += state.nbytes
        room = self.max_cache_bytes - self._pinned_bytes
        while self._lru_bytes > room and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._lru_bytes -= old.nbytes

    def state(self, prefix: Sequence[int], chunk: int = 0) -> State:
        """Hidden state of chunk `chunk` after len(prefix) layers run with r = prefix[i]."""
        prefix = tuple(int(r) for r in prefix)
        start, state = 0, None
        for k in range(len(prefix), -1, -1):
            state = self._lookup((chunk, prefix[:k]))
            if state is not None:
                start = k
                break
        if state is None:
            state = self._embed(chunk)
            self._store((chunk, ()), state)
        with torch.inference_mode():
            method = self.model.method
            for k in range(start, len(prefix)):
                x, size = self.model.blocks[k](state.x, state.size, prefix[k], "reference", method)
                state = State(x, size)
                self.block_calls += 1
                self._store((chunk, prefix[: k + 1]), state)
        return state

    def outputs(self, rs: Sequence[int]) -> Iterator[np.ndarray]:
        """The primary output (pooled, or logits for a classifier) of each chunk under the full
        schedule rs, in chunk order."""
        if len(rs) != self.depth:
            raise ValueError(f"schedule has {len(rs)} layers, the model has {self.depth}")
        for chunk in range(len(self.chunks)):
            state = self.state(rs, chunk)
            with torch.inference_mode():
                outputs = self.model.finish(state.x, state.size)
                out = outputs[0] if self.model.head is not None else outputs[1]
            yield out.float().numpy()

    def output(self, rs: Sequence[int]) -> np.ndarray:
        """The primary output of every clip under the full schedule rs."""
        return np.concatenate(list(self.outputs(rs)))

    @property
    def cached_bytes(self) -> int:
        return self._lru_bytes + self._pinned_bytes
