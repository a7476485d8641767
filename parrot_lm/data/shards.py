"""Token shards on disk: flat uint16/uint32 `.bin` files plus one `meta.json` that describes them.

meta.json is written last, through a temporary name, so its presence means the artifact is whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from parrot_lm.core.errors import DataError
from parrot_lm.core.io import atomic_write_text
from parrot_lm.data.files import read_json

META_FILE = "meta.json"
FORMAT = "parrot_lm.tokens/1"
DTYPES = ("uint16", "uint32")  # what dtype_for_vocab writes
REBUILD = "re-run data preparation with --force"


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The smallest shard dtype that holds every token id of a `vocab_size` vocabulary."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_meta(data_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write meta.json last and atomically; returns what was written."""
    meta = {"format": FORMAT, **meta}
    atomic_write_text(data_dir / META_FILE, json.dumps(meta, indent=2) + "\n")
    return meta


def read_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """Load and sanity-check meta.json; every problem is one DataError sentence."""
    data_dir = Path(data_dir)
    path = data_dir / META_FILE
    if not data_dir.is_dir():
        raise DataError(f"Data directory {data_dir} does not exist; prepare the data first.")
    if not path.is_file():
        raise DataError(
            f"Data directory {data_dir} has no {META_FILE}; it is not a prepared corpus "
            "(prepare it with scripts/prepare.py, or point data.data_dir at one)."
        )
    meta = read_json(path, REBUILD)
    check_meta(meta, path)
    for split in meta["splits"].values():
        for shard in split["shards"]:
            shard_path = data_dir / shard["file"]
            expected = shard["num_tokens"] * np.dtype(meta["dtype"]).itemsize
            if not shard_path.is_file() or shard_path.stat().st_size != expected:
                raise DataError(f"Shard {shard_path} is missing or has the wrong size; {REBUILD}.")
    return meta


def check_meta(meta: Any, path: Path) -> None:
    """The shape every reader of meta.json relies on, checked in one place: one DataError
    sentence naming `path` and the first thing wrong otherwise."""

    def bad(what: str) -> DataError:
        return DataError(f"{path} {what}; it is not a ParrotLM corpus description, {REBUILD}.")

    if not isinstance(meta, dict):
        raise bad(f"holds a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise DataError(
            f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}; {REBUILD}."
        )
    for key, kind in (("splits", dict), ("tokenizer", dict), ("vocab_size", int), ("eot_id", int)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise bad(f"has no {key!r} ({'an object' if kind is dict else 'an integer'})")
    if meta.get("dtype") not in DTYPES:
        raise bad(f"has dtype {meta.get('dtype')!r}, not one of {', '.join(DTYPES)}")
    if not isinstance(meta["tokenizer"].get("kind"), str):
        raise bad("has no tokenizer kind")
    for name, split in meta["splits"].items():
        shards = split.get("shards") if isinstance(split, dict) else None
        if not isinstance(shards, list):
            raise bad(f"has no list of shards for split {name!r}")
        for i, shard in enumerate(shards):
            file = shard.get("file") if isinstance(shard, dict) else None
            tokens = shard.get("num_tokens") if isinstance(shard, dict) else None
            # A bare file name: a shard lives in the data dir, never elsewhere.
            if not isinstance(file, str) or not file or Path(file).name != file:
                raise bad(f"has no file name for shard {i} of split {name!r}")
            if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
                raise bad(f"has no token count for shard {file} of split {name!r}")


def verify_shards(data_dir: Path, meta: dict[str, Any]) -> list[str]:
    """Files whose sha256 differs from meta.json (empty list = all good)."""
    bad = []
    for split in meta["splits"].values():
        for shard in split["shards"]:
            if sha256_file(data_dir / shard["file"]) != shard.get("sha256"):
                bad.append(shard["file"])
    return bad
