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
from parrot_lm.data.filters import (
    Decontaminator,
    DocFilter,
    ExactDedup,
    LanguageFilter,
    MinLength,
    apply_filters,
)
from parrot_lm.data.shards import META_FILE, dtype_for_vocab, read_meta, write_meta, write_tokens
from parrot_lm.data.sources import iter_documents
from parrot_lm.errors import DataError

log = logging.getLogger(__name__)

TOKENIZER_KINDS = ("bpe", "char", "gpt2", "byte")


def config_hash(
    source: dict, tokenizer: dict, val_fraction: float, filters: dict | None = None
) -> str:
    blob = {"source": source, "tokenizer": tokenizer, "val_fraction": val_fraction}
    if filters:  # absent from the hash when unused, so older artifacts stay valid
        blob["filters"] = filters
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def build_filters(spec: dict[str, Any] | None) -> list[DocFilter]:
    """The filters a `data.filters` config asks for, in a fixed order: cheap ones first."""
    spec = spec or {}
    filters: list[DocFilter] = []
    if spec.get("min_chars"):
        filters.append(MinLength(int(spec["min_chars"])))
    if spec.get("dedup"):
        filters.append(ExactDedup())
    if spec.get("language"):
        lang = spec["language"]
        filters.append(
            LanguageFilter(lang["model"], lang.get("lang", "en"), lang.get("threshold", 0.65))
        )
    if spec.get("decontaminate"):
        dec = spec["decontaminate"]
        eval_sets = {name: list(iter_documents(src)) for name, src in dec["eval_sets"].items()}
        filters.append(Decontaminator(eval_sets, int(dec.get("n", 13)), dec.get("mode", "drop")))
    return filters


def load_documents(source: dict[str, Any], filters: list[DocFilter] = ()) -> list[str]:
    """The source's documents that pass the filters (held in memory: fine up to a few GB)."""
    docs = list(apply_filters(iter_documents(source), filters))
    if not docs:
        reason = "after filtering" if filters else "; check its path"
        raise DataError(f"The {source.get('kind')} source yielded no documents {reason}.")
    return docs


def split_documents(docs: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last val_fraction of documents (at least one) is validation; never shuffled across."""
    if len(docs) < 2:
        raise DataError(f"The corpus has {len(docs)} document(s); at least 2 are needed.")
    n_val = min(len(docs) - 1, max(1, round(len(docs) * val_fraction)))
    return docs[:-n_val], docs[-n_val:]


def build_tokenizer(spec: dict[str, Any], train_docs: list[str], data_dir: Path):
    """Make (and save, for `bpe` and `char`) the tokenizer from the train split only;
    return (tokenizer, meta entry)."""
    kind = spec.get("kind")
    if kind == "bpe":
        ranks = tok.train_bpe(train_docs, int(spec["vocab_size"]))
        tok.save_ranks(ranks, data_dir / tok.RANKS_FILE)
        entry = {"kind": "bpe", "file": tok.RANKS_FILE, "name": f"bpe{spec['vocab_size']}"}
    elif kind == "char":
        tok.train_char(train_docs, spec.get("max_chars")).save(data_dir / tok.CHARS_FILE)
        entry = {"kind": "char", "file": tok.CHARS_FILE}
    elif kind == "gpt2":
        entry = {k: spec[k] for k in ("kind", "vocab_bpe", "encoder_json") if spec.get(k)}
    elif kind == "byte":
        entry = {"kind": kind}
    else:
        raise DataError(f"Unknown tokenizer kind {kind!r}; expected one of bpe, char, gpt2, byte.")
    return tok.load_tokenizer(entry, data_dir), entry


def prepare_corpus(
    data_dir: str | Path,
    source: dict[str, Any],
    tokenizer: dict[str, Any],
    val_fraction: float = 0.05,
    force: bool = False,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the meta of a valid artifact for this config, building it if needed."""
    data_dir = Path(data_dir)
    if tokenizer.get("kind") not in TOKENIZER_KINDS:  # fail before reading any data
        raise DataError(
            f"Unknown tokenizer kind {tokenizer.get('kind')!r}; expected one of "
            f"{', '.join(TOKENIZER_KINDS)}."
        )
    digest = config_hash(source, tokenizer, val_fraction, filters)
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
    doc_filters = build_filters(filters)
    docs = load_documents(source, doc_filters)
    replaced = sum("\ufffd" in d for d in docs)
    if replaced:
        log.warning("%d documents contain U+FFFD (undecodable bytes replaced).", replaced)
    train_docs, val_docs = split_documents(docs, val_fraction)
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
        "filters": [f.stats.to_dict() for f in doc_filters],
        "docs_with_replacement_chars": replaced,
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
