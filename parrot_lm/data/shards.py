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

META_FILE = "meta.json"
FORMAT = "parrot_lm.tokens/1"


def dtype_for_vocab(vocab_size: int) -> np.dtype:
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
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); re-run data preparation.") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}.")
    for split in meta.get("splits", {}).values():
        for shard in split["shards"]:
            shard_path = data_dir / shard["file"]
            expected = shard["num_tokens"] * np.dtype(meta["dtype"]).itemsize
            if not shard_path.is_file() or shard_path.stat().st_size != expected:
                raise DataError(
                    f"Shard {shard_path} is missing or has the wrong size; re-run data "
                    "preparation with --force."
                )
    return meta


def verify_shards(data_dir: Path, meta: dict[str, Any]) -> list[str]:
    """Files whose sha256 differs from meta.json (empty list = all good)."""
    bad = []
    for split in meta["splits"].values():
        for shard in split["shards"]:
            if sha256_file(data_dir / shard["file"]) != shard["sha256"]:
                bad.append(shard["file"])
    return bad
