"""A data position that is a function of saved state, so a resumed run sees the same batches.

The order of epoch e is a permutation seeded by (seed, epoch) alone, split across ranks without
overlap. The loader's state is (epoch, batches consumed), read from Lightning's own progress
counters at save time rather than from the iterator, which workers and prefetching run ahead of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or sequential) indices for one epoch; can start part-way through an epoch.

    The windows left over by the rounding are different ones each epoch (the permutation
    changes), so no data is dropped for good.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        multiple_of: int = 1,
    ) -> None:
        self.num_samples = num_samples
        self.multiple_of = multiple_of
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip in that epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        self.epoch = epoch
        self._resume = (epoch, skip)

    def __len__(self) -> int:
        """Samples per rank in a whole epoch (also when resuming part-way through one).

        Rounded down to `multiple_of` (batch size x gradient accumulation), so an epoch is a
        whole number of optimizer steps and step-based cadences stay aligned across epochs.
        """
        per_rank = self.num_samples // self.world_size
        return per_rank // self.multiple_of * self.multiple_of

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        order = order[: len(self) * self.world_size][self.rank :: self.world_size]
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        return iter(order[skip:].tolist())


class ResumableDataLoader(DataLoader):
    """A DataLoader that Lightning saves and restores (it has state_dict / load_state_dict).

    `position` returns (epoch, batches consumed in that epoch) from the trainer's counters.
    """

    def __init__(
        self,
        dataset: Dataset,
        sampler: ResumableSampler,
        batch_size: int,
        position: Callable[[], tuple[int, int]],
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)
        self.position = position

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.position()
        return {
            "epoch": epoch,
            "batches_done": batches,
            "batch_size": self.batch_size,
            "seed": self.sampler.seed,
            "world_size": self.sampler.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("batch_size", "seed", "world_size"):
            now = getattr(self, key) if key == "batch_size" else getattr(self.sampler, key)
            if state[key] != now:
                raise ValueError(
                    f"Cannot resume the data position: the checkpoint used {key}={state[key]} "
                    f"but this run uses {now}."
                )
        epoch, batches = state["epoch"], state["batches_done"]
        if batches >= len(self):  # saved at the very end of an epoch: the next one starts fresh
            epoch, batches = epoch + 1, 0
        self.sampler.resume_at(epoch, batches * self.batch_size)
