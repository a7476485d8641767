"""Streaming corpus writing: documents are spilled to disk as they arrive and tokens are written
shard by shard, so memory stays bounded whatever the size of the corpus.

Each shard is written under a temporary name and renamed when complete; meta.json (written by
the caller, last) is what makes the set of shards a valid artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from parrot_lm.core.errors import DataError
from parrot_lm.core.io import atomic_file
from parrot_lm.data import tokenizer as tok

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard
BATCH_DOCS = 1024  # documents per encoding task


def spill_documents(
    docs: Iterable[str], work: Path, val_fraction: float, val_docs: Iterable[str] | None = None
) -> dict[str, int]:
    """Write documents to work/{train,val}.jsonl as they stream by; every k-th one (k = 1 /
    val_fraction) goes to val. Returns counts of documents and characters per split
    (train, val, train_chars, val_chars).

    A corpus of fewer than k documents gets no k-th one: then the val split is the one document
    whose length is closest to val_fraction of the text among those holding at most half of it
    (see move_one_to_val), not whichever came last, which for a folder of .txt files is just
    the last file name (and may be most of the corpus).

    With val_docs, val is exactly those documents and every one of `docs` goes to train.
    """
    every = max(2, round(1 / val_fraction)) if val_fraction > 0 and val_docs is None else 0
    counts = {"train": 0, "val": 0, "train_chars": 0, "val_chars": 0}
    with open(work / "train.jsonl", "w") as train, open(work / "val.jsonl", "w") as val:
        for i, doc in enumerate(docs):
            split, out = ("val", val) if every and i % every == every - 1 else ("train", train)
            out.write(json.dumps(doc) + "\n")
            counts[split] += 1
            counts[f"{split}_chars"] += len(doc)
        for doc in val_docs or ():
            val.write(json.dumps(doc) + "\n")
            counts["val"] += 1
            counts["val_chars"] += len(doc)
    if counts["val"] == 0 and counts["train"] > 1 and val_docs is None:
        moved = move_one_to_val(work, val_fraction, counts["train_chars"])
        counts["train"], counts["val"] = counts["train"] - 1, 1
        counts["train_chars"], counts["val_chars"] = counts["train_chars"] - moved, moved
    return counts


def move_one_to_val(work: Path, val_fraction: float, total_chars: int) -> int:
    """Move one document of work/train.jsonl to the empty work/val.jsonl; return its length.

    The document moved is the one whose length is closest to val_fraction * total_chars among
    those of at most half the text (the shortest always qualifies), the first on ties. Reads the
    spill file three times (choose, copy, rewrite) so memory stays bounded by one document.
    """
    target = val_fraction * total_chars
    best, best_len, best_gap = -1, 0, float("inf")
    for i, doc in enumerate(read_spilled(work / "train.jsonl")):
        # With two or more documents the shortest holds at most half, so one always qualifies.
        if 2 * len(doc) <= total_chars and abs(len(doc) - target) < best_gap:
            best, best_len, best_gap = i, len(doc), abs(len(doc) - target)
    copy = work / "train.all.jsonl"
    with open(work / "train.jsonl") as src, open(copy, "w") as dst:
        shutil.copyfileobj(src, dst)
    with open(copy) as src, open(work / "train.jsonl", "w") as train:
        with open(work / "val.jsonl", "w") as val:
            for i, line in enumerate(src):
                (val if i == best else train).write(line)
    copy.unlink()
    return best_len


def check_val_share(counts: dict[str, int], source: dict[str, Any]) -> None:
    """Refuse a document-level split whose val part holds more than half of the text.

    `counts` comes from spill_documents (documents and characters per split). A few large
    documents (a folder of .txt files, each one document) can put most of the corpus in val,
    which trains on scraps and only fails, or misleads, later; raises DataError (one sentence).
    """
    total = counts["train_chars"] + counts["val_chars"]
    if 2 * counts["val_chars"] <= total:
        return
    docs = counts["train"] + counts["val"]
    inside = (
        "set data.source.sample_by=paragraph to split inside the .txt files, or add documents"
        if source.get("kind") == "files"
        else "add documents"
    )
    raise DataError(
        f"The corpus has {docs} documents and the val split would hold "
        f"{100 * counts['val_chars'] / total:.0f}% of its text ({counts['val']} of them); "
        f"{inside}, or give data.val_source."
    )


def read_spilled(path: Path, max_bytes: int | None = None) -> Iterator[str]:
    """Documents back from a spill file, optionally only the first max_bytes of text."""
    seen = 0
    with open(path) as f:
        for line in f:
            doc = json.loads(line)
            seen += len(doc)
            if max_bytes is not None and seen > max_bytes and seen != len(doc):
                return
            yield doc


def batches(docs: Iterable[str], size: int = BATCH_DOCS) -> Iterator[list[str]]:
    batch: list[str] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class ShardWriter:
    """Appends token arrays to {split}_000.bin, {split}_001.bin, ... of at most shard_tokens
    tokens each, hashing as it writes."""

    def __init__(self, data_dir: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.data_dir, self.split, self.dtype = data_dir, split, np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._file = None

    def _open(self) -> None:
        name = f"{self.split}_{len(self.shards):03d}.bin"
        self._final = self.data_dir / name
        self._stack = contextlib.ExitStack()
        self._file = self._stack.enter_context(atomic_file(self._final))
        self._hash = hashlib.sha256()
        self._count = 0

    def _close_shard(self) -> None:
        self._stack.close()  # fsync and rename into place
        self.shards.append(
            {"file": self._final.name, "num_tokens": self._count, "sha256": self._hash.hexdigest()}
        )
        self._file = None

    def abort(self) -> None:
        """Drop the shard being written (its temporary file goes; finished shards stay)."""
        if self._file is not None:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._file = None

    def write(self, ids: np.ndarray) -> None:
        ids = ids.astype(self.dtype, copy=False)
        while ids.size:
            if self._file is None:
                self._open()
            room = self.shard_tokens - self._count
            chunk, ids = ids[:room], ids[room:]
            data = chunk.tobytes()
            self._file.write(data)
            self._hash.update(data)
            self._count += chunk.size
            if self._count == self.shard_tokens:
                self._close_shard()

    def close(self) -> list[dict[str, Any]]:
        if self._file is not None:
            self._close_shard()
        return self.shards


_worker_tokenizer: Any = None


def _init_worker(entry: dict[str, Any], data_dir: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tok.load_tokenizer(entry, Path(data_dir))


def _encode_batch(docs: list[str]) -> np.ndarray:
    """One flat array: each document's ids followed by EOT."""
    encoded = tok.encode_documents(_worker_tokenizer, docs)
    total = sum(len(ids) for ids in encoded)
    return np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=total)


def encode_split(
    entry: dict[str, Any],
    data_dir: Path,
    docs: Iterable[str],
    writer: ShardWriter,
    workers: int = 1,
    progress: str | None = None,
) -> dict[str, int]:
    """Tokenize docs (EOT after each) into the writer, in order; returns counts for meta.json."""
    from tqdm import tqdm

    stats = {"num_documents": 0, "num_tokens": 0, "num_bytes": 0, "max_token_id": -1}

    def counted(stream: Iterable[str]) -> Iterator[list[str]]:
        for batch in batches(stream):
            stats["num_documents"] += len(batch)
            stats["num_bytes"] += sum(len(d.encode()) for d in batch)
            yield batch

    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(entry, str(data_dir)))
        encoded = pool.imap(_encode_batch, counted(docs), chunksize=4)
    else:
        pool = None
        _init_worker(entry, str(data_dir))
        encoded = map(_encode_batch, counted(docs))
    try:
        for ids in tqdm(encoded, desc=progress, unit="batch", disable=progress is None):
            if ids.size:
                stats["max_token_id"] = max(stats["max_token_id"], int(ids.max()))
                stats["num_tokens"] += int(ids.size)
                writer.write(ids)
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.terminate()
    if stats["num_tokens"] == 0:
        raise DataError(f"The {writer.split} split has no tokens.")
    return {**stats, "shards": writer.close()}
