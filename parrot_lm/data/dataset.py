"""Windows over memmapped token shards; inputs and targets shift by one.

TokenWindows: fixed training windows of context + 1 tokens. StridedWindows: evaluation windows
that score every token once, each with up to a context of left context.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from parrot_lm.core.errors import ConfigError, DataError


class TokenWindows(Dataset):
    """Window i covers tokens [i*stride, i*stride + context + 1) of its shard.

    Only paths and sizes live on the object; each worker process opens its own memmap lazily,
    because a pickled memmap would carry its data.
    """

    def __init__(
        self,
        shards: list[tuple[Path, int]],
        dtype: str,
        context_length: int,
        stride: int | None = None,
    ) -> None:
        self.shards = [(Path(p), int(n)) for p, n in shards]
        self.dtype = np.dtype(dtype)
        self.context_length = context_length
        self.stride = stride or context_length
        counts = [max(0, (n - context_length - 1) // self.stride + 1) for _, n in self.shards]
        self.starts = np.cumsum([0] + counts)  # first window index of each shard
        total = sum(n for _, n in self.shards)
        if self.starts[-1] == 0:
            raise DataError(
                f"The corpus has {total} tokens, fewer than one window of context_length + 1 = "
                f"{context_length + 1}; use more data or a smaller model.context_length."
            )
        self._maps: list[np.memmap] | None = None

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _memmaps(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p, _ in self.shards]
        return self._maps

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        offset = (index - int(self.starts[shard])) * self.stride
        chunk = self._memmaps()[shard][offset : offset + self.context_length + 1]
        chunk = torch.from_numpy(chunk.astype(np.int64))
        return chunk[:-1], chunk[1:]  # (T,), (T,)


IGNORE = -100  # targets already scored by an earlier window (F.cross_entropy's ignore_index)


def strided_windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_new) per window: inputs tokens[begin:end], targets tokens[begin+1:end+1],
    of which the last n_new are scored. Every token but the first is scored exactly once."""
    if not 1 <= stride <= context:
        raise ConfigError(
            f"The stride must be between 1 and the context length ({context}), got {stride}."
        )
    if n_tokens < 2:
        raise DataError(f"Perplexity needs at least 2 tokens, got {n_tokens}.")
    windows, begin, scored = [], 0, 0  # scored: index of the last target scored so far
    while True:
        end = min(begin + context, n_tokens - 1)
        windows.append((begin, end, end - scored))
        if end == n_tokens - 1:
            return windows
        scored, begin = end, begin + stride


class TokenStream:
    """Memmapped shards read as one token sequence (paths only are pickled to workers)."""

    def __init__(self, shards: Sequence[tuple[Path, int]], dtype: str) -> None:
        self.shards = [(Path(p), int(n)) for p, n in shards]
        self.dtype = np.dtype(dtype)
        self.offsets = np.cumsum([0] + [n for _, n in self.shards])
        self._maps: list[np.memmap] | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}

    def __getitem__(self, span: slice) -> np.ndarray:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p, _ in self.shards]
        start, stop = span.start, span.stop
        parts = []
        for i, mm in enumerate(self._maps):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            if stop <= lo or start >= hi:
                continue
            parts.append(mm[max(start, lo) - lo : min(stop, hi) - lo])
        return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


class StridedWindows(Dataset):
    """Windows of `strided_windows`, padded to the context: x (T,), y (T,) with IGNORE on
    targets scored elsewhere and on padding."""

    def __init__(self, tokens: np.ndarray | TokenStream, context: int, stride: int | None = None):
        self.tokens = tokens
        self.context = context
        self.windows = strided_windows(len(tokens), context, stride or context)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        begin, end, n_new = self.windows[index]
        chunk = torch.from_numpy(np.asarray(self.tokens[begin : end + 1]).astype(np.int64))
        x = torch.zeros(self.context, dtype=torch.long)
        y = torch.full((self.context,), IGNORE, dtype=torch.long)
        n = end - begin
        x[:n] = chunk[:-1]
        y[n - n_new : n] = chunk[1 + n - n_new :]
        return x, y
