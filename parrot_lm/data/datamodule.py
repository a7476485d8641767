"""LightningDataModule over a prepared corpus of memmapped token shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Subset

from parrot_lm.core.errors import DataError
from parrot_lm.data.dataset import StridedWindows, TokenStream, TokenWindows
from parrot_lm.data.prepare import prepare_corpus
from parrot_lm.data.sampler import ResumableDataLoader, ResumableSampler
from parrot_lm.data.shards import read_meta
from parrot_lm.data.tokenizer import Tokenizer, load_tokenizer


class TokenDataModule(L.LightningDataModule):
    """Builds the corpus when `source` is given and the artifact is missing; reuses it when valid.

    With `source=None` the data dir must already hold a prepared corpus.
    """

    def __init__(
        self,
        data_dir: str,
        context_length: int,
        batch_size: int = 32,
        source: dict[str, Any] | None = None,
        tokenizer: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
        val_source: dict[str, Any] | None = None,
        val_fraction: float = 0.05,
        val_stride: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        name: str | None = None,
        overfit_batches: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.context_length = context_length
        self.batch_size = batch_size
        self.source = source
        self.tokenizer_spec = tokenizer
        self.filters = filters
        self.val_source = val_source
        self.val_fraction = val_fraction
        self.val_stride = val_stride
        self.num_workers = num_workers
        self.seed = seed
        self.name = name
        self.overfit_batches = overfit_batches
        self.train_set: TokenWindows | Subset | None = None
        self.val_set: TokenWindows | Subset | None = None
        self._tokenizer: Tokenizer | None = None

    def prepare_data(self) -> None:
        if self.source is not None:
            if self.tokenizer_spec is None:
                raise DataError("data.tokenizer must be set when data.source is set.")
            # Parallel sweep jobs and SLURM ranks may all start here: one prepares, the others
            # wait and then find the artifact ready.
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(self.data_dir.parent / f".{self.data_dir.name}.lock"):
                prepare_corpus(
                    self.data_dir,
                    self.source,
                    self.tokenizer_spec,
                    self.val_fraction,
                    filters=self.filters,
                    val_source=self.val_source,
                )
        else:
            read_meta(self.data_dir)

    @property
    def meta(self) -> dict[str, Any]:
        return read_meta(self.data_dir)

    def load_tokenizer(self) -> Tokenizer:
        """Loaded once per data module: samples ask for it at every validation."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.meta["tokenizer"], self.data_dir)
        return self._tokenizer

    def _shards(self, meta: dict[str, Any], split: str) -> list[tuple[Path, int]]:
        if split not in meta["splits"]:
            raise DataError(f"{self.data_dir} has no '{split}' split.")
        return [
            (self.data_dir / s["file"], s["num_tokens"]) for s in meta["splits"][split]["shards"]
        ]

    def _windows(self, meta: dict[str, Any], split: str) -> TokenWindows:
        return TokenWindows(self._shards(meta, split), meta["dtype"], self.context_length)

    def split_stream(self, meta: dict[str, Any], split: str) -> TokenStream:
        """A split's tokens as one sequence, for strided evaluation windows."""
        stream = TokenStream(self._shards(meta, split), meta["dtype"])
        if len(stream) < self.context_length + 1:
            raise DataError(
                f"The {split} split has {len(stream)} tokens, fewer than one window of "
                f"context_length + 1 = {self.context_length + 1}; use more data or a smaller "
                "model.context_length."
            )
        return stream

    def setup(self, stage: str | None = None) -> None:
        meta = self.meta
        if self.train_set is None:
            self.train_set = self._windows(meta, "train")
            self.val_set = StridedWindows(
                self.split_stream(meta, "val"), self.context_length, self.val_stride
            )
        if self.overfit_batches and not isinstance(self.train_set, Subset):
            # debug=overfit: the first windows only, trained and scored over and over (Lightning's
            # own overfit_batches swaps in a SequentialSampler, which the resumable loader refuses)
            accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
            count = self.overfit_batches * self.batch_size * accumulate
            self.train_set = self.val_set = Subset(
                self.train_set, range(min(count, len(self.train_set)))
            )
        if stage == "fit" and self.trainer is not None:
            # Before Lightning's sanity validation: a train split too small for one optimizer
            # step would otherwise be found only after a validation pass.
            self._train_sampler()

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _position(self) -> tuple[int, int]:
        """(epoch, batches consumed in it), from Lightning's progress counters.

        The epoch is the last one started: Lightning counts an epoch as completed as soon as
        its loop ends, also when a stop or max_steps ended it part-way through.
        """
        loop = self.trainer.fit_loop
        epoch = max(loop.epoch_progress.current.ready - 1, 0)
        return epoch, loop.epoch_loop.batch_progress.current.ready

    def _loader_kwargs(self) -> dict[str, Any]:
        # Own generator: the global RNG (dropout) is not consumed by creating iterators.
        return {
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "generator": torch.Generator().manual_seed(self.seed),
        }

    def _train_sampler(self) -> ResumableSampler:
        """This rank's sampler over the training windows; DataError when they do not fill one
        optimizer step (batch_size x accumulate_grad_batches x ranks windows)."""
        rank, world = self._rank_and_world()
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        sampler = ResumableSampler(
            len(self.train_set), self.seed, True, rank, world, self.batch_size * accumulate
        )
        if len(sampler) == 0:
            raise DataError(
                f"The training split has {len(self.train_set)} windows, fewer than one optimizer "
                f"step needs ({self.batch_size * accumulate * world}); lower data.batch_size or "
                "trainer.accumulate_grad_batches, or use more data."
            )
        return sampler

    def train_dataloader(self) -> ResumableDataLoader:
        sampler = self._train_sampler()
        return ResumableDataLoader(
            self.train_set, sampler, self.batch_size, self._position, **self._loader_kwargs()
        )

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        # Every window once across ranks, none dropped or repeated (ranks may get one batch more
        # or less; the metric sums over all of them).
        sampler = range(rank, len(self.val_set), world)
        return DataLoader(
            self.val_set, batch_size=self.batch_size, sampler=sampler, **self._loader_kwargs()
        )
