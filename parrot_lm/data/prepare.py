"""Build a prepared corpus: documents -> train/val split -> tokenizer -> token shards + meta.json.

Idempotent: an artifact whose meta.json records the same config hash is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from parrot_lm.data import tokenizer as tok
from parrot_lm.data.shards import META_FILE, dtype_for_vocab, read_meta, write_meta, write_tokens
from parrot_lm.errors import DataError

log = logging.getLogger(__name__)


def config_hash(source: dict, tokenizer: dict, val_fraction: float) -> str:
    blob = json.dumps(
        {"source": source, "tokenizer": tokenizer, "val_fraction": val_fraction}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_documents(source: dict[str, Any]) -> list[str]:
    kind = source.get("kind")
    if kind == "stories":
        from parrot_lm.data.stories import generate_stories

        return generate_stories(int(source["num_documents"]), seed=int(source.get("seed", 0)))
    raise DataError(f"Unknown data source kind {kind!r}; this version knows 'stories'.")


def split_documents(docs: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last val_fraction of documents (at least one) is validation; never shuffled across."""
    if len(docs) < 2:
        raise DataError(f"The corpus has {len(docs)} document(s); at least 2 are needed.")
    n_val = min(len(docs) - 1, max(1, round(len(docs) * val_fraction)))
    return docs[:-n_val], docs[-n_val:]


def build_tokenizer(spec: dict[str, Any], train_docs: list[str], data_dir: Path):
    """Make (and save, for `bpe`) the tokenizer; return (encoding, meta entry)."""
    kind = spec.get("kind")
    if kind == "bpe":
        ranks = tok.train_bpe(train_docs, int(spec["vocab_size"]))
        tok.save_ranks(ranks, data_dir / tok.RANKS_FILE)
        entry = {"kind": "bpe", "file": tok.RANKS_FILE, "name": f"bpe{spec['vocab_size']}"}
    elif kind in ("gpt2", "byte"):
        entry = {"kind": kind}
    else:
        raise DataError(f"Unknown tokenizer kind {kind!r}; expected one of bpe, gpt2, byte.")
    return tok.load_tokenizer(entry, data_dir), entry


def prepare_corpus(
    data_dir: str | Path,
    source: dict[str, Any],
    tokenizer: dict[str, Any],
    val_fraction: float = 0.05,
    force: bool = False,
) -> dict[str, Any]:
    """Return the meta of a valid artifact for this config, building it if needed."""
    data_dir = Path(data_dir)
    digest = config_hash(source, tokenizer, val_fraction)
    if (data_dir / META_FILE).is_file() and not force:
        try:
            meta = read_meta(data_dir)
        except DataError as e:
            log.warning("Existing data in %s is not usable (%s); rebuilding.", data_dir, e)
        else:
            if meta.get("config_hash") == digest:
                return meta
            raise DataError(
                f"{data_dir} already holds a corpus prepared with another config (hash "
                f"{meta.get('config_hash')}, this one is {digest}); point data.data_dir at a new "
                "directory, or delete this one to rebuild it."
            )
    data_dir.mkdir(parents=True, exist_ok=True)
    # The artifact is invalid while it is rebuilt: meta.json goes first and comes back last.
    (data_dir / META_FILE).unlink(missing_ok=True)

    log.info("Preparing %s into %s", source.get("kind"), data_dir)
    train_docs, val_docs = split_documents(load_documents(source), val_fraction)
    enc, tok_entry = build_tokenizer(tokenizer, train_docs, data_dir)
    dtype = dtype_for_vocab(enc.n_vocab)
    splits = {}
    for name, docs in (("train", train_docs), ("val", val_docs)):
        ids = np.fromiter(
            (t for doc in tok.encode_documents(enc, docs) for t in doc), dtype=np.int64
        )
        shard = write_tokens(data_dir / f"{name}_000.bin", ids.astype(dtype))
        splits[name] = {
            "num_documents": len(docs),
            "num_tokens": shard["num_tokens"],
            "num_bytes": sum(len(d.encode()) for d in docs),
            "max_token_id": int(ids.max()),
            "shards": [shard],
        }
    meta = {
        "source": source,
        "tokenizer": {**tok_entry, "vocab_size": enc.n_vocab, "eot_id": enc.eot_token},
        "vocab_size": enc.n_vocab,
        "eot_id": enc.eot_token,
        "dtype": dtype.name,
        "val_fraction": val_fraction,
        "config_hash": digest,
        "splits": splits,
    }
    meta = write_meta(data_dir, meta)
    log.info(
        "Prepared %s train / %s val tokens, vocab %d",
        f"{splits['train']['num_tokens']:,}",
        f"{splits['val']['num_tokens']:,}",
        enc.n_vocab,
    )
    return meta
