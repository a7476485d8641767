"""Build a prepared corpus: documents -> train/val split -> tokenizer -> token shards + meta.json.

Idempotent: an artifact whose meta.json records the same config hash is reused as it is.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parrot_lm.core.checks import check_value, integer, number, show
from parrot_lm.core.errors import ConfigError, DataError
from parrot_lm.core.io import (
    remove_stale_temporaries,
    storage_error,
    swap_files_in,
    temp_path,
)
from parrot_lm.data import tokenizer as tok
from parrot_lm.data.filters import (
    Decontaminator,
    DocFilter,
    ExactDedup,
    LanguageFilter,
    MinLength,
    apply_filters,
    count_filter_tokens,
    filter_summary,
)
from parrot_lm.data.shards import META_FILE, dtype_for_vocab, read_meta, write_meta
from parrot_lm.data.sources import iter_documents, no_documents
from parrot_lm.data.writer import (
    DEFAULT_SHARD_TOKENS,
    ShardWriter,
    check_val_share,
    encode_split,
    read_spilled,
    spill_documents,
)

log = logging.getLogger(__name__)

TOKENIZER_KINDS = ("bpe", "char", "gpt2", "byte")
SAMPLE_BY = ("document", "paragraph", "line")  # datasets' text builder: one example per ...
TOKENIZER_FILES = (tok.RANKS_FILE, tok.CHARS_FILE)  # what bpe and char save in the data dir
VAL_FRACTION = number(ge=0, lt=1)  # data.val_fraction (the schema declares it with this)
BPE_VOCAB = integer(ge=tok.MIN_BPE_VOCAB)


def check_source_spec(source: dict[str, Any], key: str = "data.source") -> None:
    """The counts of a source spec are in range (`limit`, the stories' `num_documents`): one
    ConfigError sentence naming the key otherwise; run before any data is read."""
    if not isinstance(source, dict):
        raise ConfigError(f"{key} must be a mapping with a kind, got {show(source)}.")
    check_value(f"{key}.limit", source.get("limit"), integer(ge=1))
    sample_by = source.get("sample_by")
    if sample_by not in (None, *SAMPLE_BY):
        raise ConfigError(
            f"{key}.sample_by must be one of {', '.join(SAMPLE_BY)}; got {show(sample_by)}."
        )
    errors = source.get("encoding_errors")
    try:
        if errors is not None:
            codecs.lookup_error(str(errors))
    except LookupError:
        raise ConfigError(
            f"{key}.encoding_errors must be a Python codec error handler (strict, replace, "
            f"ignore, ...); got {show(errors)}."
        ) from None
    if source.get("kind") == "stories":  # one for train and one for val, at least
        check_value(f"{key}.num_documents", source.get("num_documents"), integer(ge=2))


def check_tokenizer_spec(tokenizer: dict[str, Any] | None) -> None:
    """`data.tokenizer` names a tokenizer preparation can build: a known kind, sized to fit.
    One ConfigError sentence naming the key otherwise; run before any data is read."""
    if tokenizer is None:
        raise ConfigError(
            "data.tokenizer must be set when data.source is set (e.g. data.tokenizer.kind=bpe)."
        )
    if not isinstance(tokenizer, dict):
        raise ConfigError(f"data.tokenizer must be a mapping with a kind, got {show(tokenizer)}.")
    kind = tokenizer.get("kind")
    if kind not in TOKENIZER_KINDS:
        raise ConfigError(
            f"Unknown tokenizer kind {kind!r} (data.tokenizer.kind); expected one of "
            f"{', '.join(TOKENIZER_KINDS)}."
        )
    check_value("data.tokenizer.train_max_bytes", tokenizer.get("train_max_bytes"), integer(ge=1))
    if kind == "char":
        check_value("data.tokenizer.max_chars", tokenizer.get("max_chars"), integer(ge=1))
    vocab = tokenizer.get("vocab_size")
    if kind == "bpe" and not BPE_VOCAB.allows(vocab):
        raise ConfigError(
            f"data.tokenizer.vocab_size must be {BPE_VOCAB.describe()} (a byte-level BPE holds "
            f"the 256 single bytes and end-of-text), got {show(vocab)}."
        )


def config_hash(
    source: dict,
    tokenizer: dict,
    val_fraction: float,
    filters: dict | None = None,
    val_source: dict | None = None,
) -> str:
    blob = {"source": source, "tokenizer": tokenizer, "val_fraction": val_fraction}
    if filters:  # absent from the hash when unused, so older artifacts stay valid
        blob["filters"] = filters
    if val_source:
        blob["val_source"] = val_source
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
            LanguageFilter(lang.get("model"), lang.get("lang", "en"), lang.get("threshold", 0.65))
        )
    if spec.get("decontaminate"):
        dec = spec["decontaminate"]
        eval_sets = {  # a null entry switches off an inherited eval set
            name: list(iter_documents(src)) for name, src in dec["eval_sets"].items() if src
        }
        filters.append(Decontaminator(eval_sets, int(dec.get("n", 13)), dec.get("mode", "drop")))
    return filters


def build_tokenizer(
    spec: dict[str, Any], train_docs: Iterable[str], stage: Path, data_dir: Path | None = None
):
    """Make (and save into `stage`, for `bpe` and `char`) the tokenizer from the train split
    only; return (tokenizer, meta entry). Relative GPT-2 file paths are relative to `data_dir`
    (default: `stage`)."""
    kind = spec.get("kind")
    if kind == "bpe":
        requested = int(spec["vocab_size"])
        ranks = tok.train_bpe(train_docs, requested)
        tok.save_ranks(ranks, stage / tok.RANKS_FILE)
        learned = len(ranks) + 1  # + EOT
        if learned < requested:
            log.warning(
                "The BPE learned %d tokens of the %d requested (data.tokenizer.vocab_size): the "
                "corpus has no more merges to learn; the vocabulary is %d.",
                learned,
                requested,
                learned,
            )
        # The name is only the tiktoken encoding's label (the config hash is what identifies a
        # corpus), so it gives the size learned, not the size asked for.
        entry = {
            "kind": "bpe",
            "file": tok.RANKS_FILE,
            "name": f"bpe{learned}",
            "requested_vocab_size": requested,
        }
    elif kind == "char":
        tok.train_char(train_docs, spec.get("max_chars")).save(stage / tok.CHARS_FILE)
        entry = {"kind": "char", "file": tok.CHARS_FILE}
    elif kind == "gpt2":
        entry = {k: spec[k] for k in ("kind", "vocab_bpe", "encoder_json") if spec.get(k)}
    elif kind == "byte":
        entry = {"kind": kind}
    else:
        raise DataError(f"Unknown tokenizer kind {kind!r}; expected one of bpe, char, gpt2, byte.")
    return tok.load_tokenizer(loadable_entry(entry, data_dir or stage), stage), entry


def loadable_entry(entry: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """A tokenizer entry whose GPT-2 file paths no longer depend on the directory it is loaded
    from (they are relative to the final data dir, while the artifact is built aside)."""
    paths = {
        key: str(Path(data_dir, Path(entry[key]).expanduser()))
        for key in ("vocab_bpe", "encoder_json")
        if entry.get(key)
    }
    return {**entry, **paths}


def count_filter_tokens_from_spill(
    changed: Path, doc_filters: list[DocFilter], enc: tok.Tokenizer, splits: dict[str, Any]
) -> None:
    """Tokens in and out of each filter, counted with the corpus's own tokenizer (EOT excluded)."""
    removed = [0] * len(doc_filters)
    with open(changed) as f:
        for line in f:
            i, text_in, text_out = json.loads(line)
            removed[i] += len(enc.encode_ordinary(text_in))
            removed[i] -= len(enc.encode_ordinary(text_out)) if text_out is not None else 0
    kept = sum(s["num_tokens"] - s["num_documents"] for s in splits.values())
    count_filter_tokens([f.stats for f in doc_filters], removed, kept)


def check_same_corpus(data_dir: Path, meta: dict[str, Any], digest: str) -> None:
    """Refuse (DataError) the corpus in `data_dir`, whose meta.json is `meta`, when it was
    prepared from another config than the one whose `config_hash` is `digest`: a run on it
    would train on other text than its config says."""
    if meta.get("config_hash") != digest:
        raise DataError(
            f"{data_dir} already holds a corpus prepared with another config (hash "
            f"{meta.get('config_hash')}, this one is {digest}); point data.data_dir at a new "
            "directory, or delete this one to rebuild it."
        )


def prepare_corpus(
    data_dir: str | Path,
    source: dict[str, Any],
    tokenizer: dict[str, Any],
    val_fraction: float = 0.05,
    force: bool = False,
    filters: dict[str, Any] | None = None,
    workers: int | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    val_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the meta of a valid artifact for this config, building it if needed.

    val_source: where the val split comes from (unfiltered; e.g. OpenWebText's held-out split);
    None takes every k-th filtered document of `source` (k = 1 / val_fraction).

    workers: tokenizer processes (None: one for small corpora, up to 8 for large ones).
    """
    data_dir = Path(data_dir)
    check_source_spec(source)  # fail before reading any data
    if val_source is not None:
        check_source_spec(val_source, "data.val_source")
    check_tokenizer_spec(tokenizer)
    check_value("data.val_fraction", val_fraction, VAL_FRACTION)
    digest = config_hash(source, tokenizer, val_fraction, filters, val_source)
    if (data_dir / META_FILE).is_file() and not force:
        try:
            meta = read_meta(data_dir)
        except DataError as e:
            log.warning("Existing data in %s is not usable (%s); rebuilding.", data_dir, e)
        else:
            check_same_corpus(data_dir, meta, digest)
            remove_stale_temporaries(data_dir)  # a killed `--force` rebuild's staging dir
            return meta
    log.info("Preparing %s into %s", source.get("kind"), data_dir)
    # The new artifact is built aside and swapped in only when complete, so until then an
    # existing one stays valid whatever happens (bad input found late, no space, Ctrl-C).
    stage = temp_path(data_dir / "staging")
    made = [p for p in (data_dir, *data_dir.parents) if not p.exists()]  # innermost first
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(data_dir)  # the staging dir of a killed prepare
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "work").mkdir(parents=True)
        meta = _build(
            stage,
            stage / "work",
            source,
            tokenizer,
            val_fraction,
            filters,
            workers,
            shard_tokens,
            digest,
            val_source,
            data_dir,
        )
        swap_in(stage, data_dir, meta)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        for path in made:  # a refused first prepare leaves no empty dirs behind
            with contextlib.suppress(OSError):
                path.rmdir()
        if isinstance(e, OSError):  # spill files, renames: what io.py's writers did not word
            raise storage_error(e.filename or data_dir, e) from e
        raise
    shutil.rmtree(stage, ignore_errors=True)
    log.info(
        "Prepared %s train / %s val tokens, vocab %d",
        f"{meta['splits']['train']['num_tokens']:,}",
        f"{meta['splits']['val']['num_tokens']:,}",
        meta["vocab_size"],
    )
    summary = filter_summary(meta)
    if summary:  # the same line whoever prepares: parrot-prepare or a training run
        log.info("%s", summary)
    return meta


def _build(
    stage: Path,
    work: Path,
    source: dict[str, Any],
    tokenizer: dict[str, Any],
    val_fraction: float,
    filters: dict[str, Any] | None,
    workers: int | None,
    shard_tokens: int,
    digest: str,
    val_source: dict[str, Any] | None,
    data_dir: Path,
) -> dict[str, Any]:
    """The whole artifact (tokenizer files, shards, meta.json) in `stage`; `data_dir` is where
    it will live (relative GPT-2 vocabulary paths are relative to it)."""
    doc_filters = build_filters(filters)
    skipped: dict[str, int] = {}
    val_skipped: dict[str, int] = {}
    decoded: dict[str, int] = {}  # both sources: the count is of the corpus's documents
    with open(work / "changed.jsonl", "w") as changed:  # what filters removed, for the report

        def record_change(i: int, text_in: str, text_out: str | None) -> None:
            changed.write(json.dumps([i, text_in, text_out]) + "\n")

        docs = apply_filters(iter_documents(source, skipped, decoded), doc_filters, record_change)
        val_docs = iter_documents(val_source, val_skipped, decoded) if val_source else None
        counts = spill_documents(docs, work, val_fraction, val_docs)
    if counts["train"] + counts["val"] == 0:
        raise DataError(no_documents(source, skipped, bool(doc_filters)))
    if counts["train"] == 0 and val_source:
        raise DataError(f"The {source.get('kind')} source yielded no training documents.")
    if counts["train"] == 0:
        raise DataError("The corpus has 1 document; at least 2 are needed (train and val).")
    if counts["val"] == 0 and val_source:
        raise DataError(no_documents(val_source, val_skipped, False, "val source"))
    if counts["val"] == 0:
        raise DataError(
            f"The corpus has {counts['train']} document; at least 2 are needed (one for train, "
            "one for val)."
        )
    if not val_source:
        check_val_share(counts, source)
    replaced = decoded.get("docs_with_replacement_chars", 0)
    if replaced:
        log.warning("%d documents read contain U+FFFD (undecodable bytes replaced).", replaced)
    sample_bytes = int(tokenizer.get("train_max_bytes", 2_000_000_000))
    enc, tok_entry = build_tokenizer(
        tokenizer, read_spilled(work / "train.jsonl", sample_bytes), stage, data_dir
    )
    dtype = dtype_for_vocab(enc.n_vocab)
    if workers is None:  # processes only pay off once there is real work
        big = (work / "train.jsonl").stat().st_size > 64 * 2**20
        workers = min(8, os.cpu_count() or 1) if big else 1
    splits = {}
    load_entry = loadable_entry(tok_entry, data_dir)
    for name in ("train", "val"):
        writer = ShardWriter(stage, name, dtype, shard_tokens)
        docs = read_spilled(work / f"{name}.jsonl")
        splits[name] = encode_split(load_entry, stage, docs, writer, workers, f"tokenize {name}")
    if doc_filters:
        count_filter_tokens_from_spill(work / "changed.jsonl", doc_filters, enc, splits)
    meta = {
        "source": source,
        "tokenizer": {**tok_entry, "vocab_size": enc.n_vocab, "eot_id": enc.eot_token},
        "vocab_size": enc.n_vocab,
        "eot_id": enc.eot_token,
        "dtype": dtype.name,
        "val_fraction": val_fraction,
        **({"val_source": val_source} if val_source else {}),
        "filters": [f.stats.to_dict() for f in doc_filters],
        "skipped_rows": skipped,
        **({"val_skipped_rows": val_skipped} if val_source else {}),
        "docs_with_replacement_chars": replaced,  # as read, before any filter
        "config_hash": digest,
        "splits": splits,
    }
    return write_meta(stage, meta)


def swap_in(stage: Path, data_dir: Path, meta: dict[str, Any]) -> None:
    """Replace the artifact in `data_dir` with the complete one in `stage` (core.io's
    swap_files_in: meta.json goes first and comes back last); shards and tokenizer files of the
    old artifact that the new one lacks are removed."""
    new = [shard["file"] for split in meta["splits"].values() for shard in split["shards"]]
    if meta["tokenizer"].get("file"):
        new.append(meta["tokenizer"]["file"])
    old = [*data_dir.glob("*_[0-9][0-9][0-9].bin"), *(data_dir / f for f in TOKENIZER_FILES)]
    swap_files_in(stage, data_dir, new, META_FILE, old)
