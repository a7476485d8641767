"""Where documents come from: the embedded stories, local files, or the Hugging Face hub.

Local files and hub datasets go through the same `datasets.load_dataset` call (streaming, so
nothing is cached or held in memory whole, unless a seeded holdout split is asked for); only where
the builder finds its files differs.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import DataError

log = logging.getLogger(__name__)

# File extension -> datasets' packaged builder that reads it.
BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def resolve_files(path: str | Path) -> tuple[str, list[str]]:
    """A file, a folder (searched recursively) or a glob -> (builder name, sorted file list)."""
    path = str(path)
    if Path(path).is_dir():
        files = sorted(
            str(p) for p in Path(path).rglob("*") if p.is_file() and p.suffix in BUILDERS
        )
    else:
        files = sorted(glob.glob(path, recursive=True)) if glob.has_magic(path) else [path]
        files = [f for f in files if Path(f).is_file()]
    if not files:
        raise DataError(f"No data files found at {path} (expected .txt, .jsonl or .parquet).")
    files = [f for f in files if Path(f).stat().st_size > 0]
    if not files:
        raise DataError(f"Every data file at {path} is empty; the corpus has no documents.")
    kinds = {BUILDERS.get(Path(f).suffix) for f in files}
    if None in kinds or len(kinds) > 1:
        suffixes = sorted({Path(f).suffix or "(none)" for f in files})
        raise DataError(
            f"Data files at {path} must all be one of .txt, .jsonl or .parquet; found {suffixes}."
        )
    return kinds.pop(), files


def load_source(source: dict[str, Any]):
    """The `datasets` dataset for a `files` or `hub` source: streamed unless a holdout split is
    asked for (`train_test_split` needs the whole, cached dataset) or streaming is off."""
    import datasets

    holdout = source.get("holdout")
    streaming = source.get("streaming", True) and not holdout
    cache = {"cache_dir": source["cache_dir"]} if source.get("cache_dir") else {}
    if source["kind"] == "files":
        builder, files = resolve_files(source["path"])
        kwargs: dict[str, Any] = {}
        if builder == "text":
            kwargs["sample_by"] = source.get("sample_by", "document")
        if builder in ("text", "json"):
            kwargs["encoding_errors"] = source.get("encoding_errors", "strict")
        dataset = datasets.load_dataset(
            builder, data_files=files, split="train", streaming=streaming, **kwargs, **cache
        )
    else:
        try:
            dataset = datasets.load_dataset(
                source["name"],
                source.get("config"),
                split=source.get("split", "train"),
                revision=source.get("revision"),
                data_files=source.get("data_files"),
                streaming=streaming,
                **cache,
            )
        except Exception as e:  # offline, unknown name, gated, ...
            raise DataError(
                f"Could not load hub dataset {source['name']!r} ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); check the name, the network, or "
                "download it first with `make download`."
            ) from e
    return take_holdout(dataset, holdout) if holdout else dataset


def take_holdout(dataset, holdout: dict[str, Any]):
    """One part of a seeded `train_test_split`: nanoGPT's OpenWebText val split is the `test`
    part of test_size=0.0005, seed=2357, and its train split the `train` part."""
    part = holdout.get("part", "test")
    if part not in ("train", "test"):
        raise DataError(f"source.holdout.part must be 'train' or 'test', got {part!r}.")
    parts = dataset.train_test_split(
        test_size=holdout["test_size"], seed=int(holdout["seed"]), shuffle=True
    )
    return parts[part]


def iter_documents(source: dict[str, Any]) -> Iterator[str]:
    """Documents as strings, in a deterministic order, up to source['limit'] if set."""
    kind = source.get("kind")
    limit = source.get("limit")
    if kind == "stories":
        from parrot_lm.data.stories import generate_stories

        yield from generate_stories(int(source["num_documents"]), seed=int(source.get("seed", 0)))
        return
    if kind not in ("files", "hub"):
        raise DataError(f"Unknown data source kind {kind!r}; expected stories, files or hub.")
    field = source.get("text_field", "text")
    where = source.get("path") or source.get("name")
    dataset = load_source(source)
    count = 0
    try:
        for row in dataset:
            if limit is not None and count >= limit:
                return
            if field not in row:
                raise DataError(
                    f"Records in {where} have no field {field!r} (fields: {sorted(row)}); set "
                    "data.source.text_field."
                )
            text = row[field]
            if isinstance(text, str):
                count += 1
                yield text
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where} contains bytes that are not UTF-8 ({e.reason} at byte {e.start}); fix the "
            "file or set data.source.encoding_errors=replace to replace them."
        ) from e
