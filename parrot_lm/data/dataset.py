"""Fixed windows of context+1 tokens over memmapped shards; inputs and targets shift by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from parrot_lm.errors import DataError


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
