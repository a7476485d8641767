"""Tokenizers, all served as `tiktoken.Encoding` so training, evaluation and generation share one.

Kinds: `gpt2` (tiktoken's GPT-2 vocabulary, downloaded on first use), `bpe` (byte-level BPE
trained on the train split with HF `tokenizers`, then exported as tiktoken ranks), `byte`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

import tiktoken

EOT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex; the HF ByteLevel pre-tokenizer uses the same one.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
RANKS_FILE = "tokenizer.tiktoken"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (used by byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def train_bpe(texts: Iterable[str], vocab_size: int) -> dict[bytes, int]:
    """Train a byte-level BPE and return tiktoken mergeable ranks (vocab_size - 1 of them).

    One id is left for the EOT special token, so the full vocabulary is exactly vocab_size.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257:
        raise ValueError(f"A byte-level BPE needs vocab_size >= 257, got {vocab_size}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    decode = {c: b for b, c in _bytes_to_unicode().items()}

    def to_bytes(token: str) -> bytes:
        return bytes(decode[c] for c in token)

    ranks = {bytes([b]): b for b in range(256)}
    for merge in merges:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        token = to_bytes(left) + to_bytes(right)
        if token not in ranks:
            ranks[token] = len(ranks)
    return ranks


def byte_ranks() -> dict[bytes, int]:
    return {bytes([b]): b for b in range(256)}


def encoding_from_ranks(name: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    """A tiktoken encoding over `ranks` with EOT as the last id."""
    return tiktoken.Encoding(
        name=name,
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={EOT: len(ranks)},
    )


def save_ranks(ranks: dict[bytes, int], path: Path) -> None:
    """tiktoken's own file format: one `base64(token) rank` per line."""
    lines = (f"{base64.b64encode(tok).decode()} {rank}" for tok, rank in ranks.items())
    path.write_text("\n".join(lines) + "\n")


def load_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def load_tokenizer(spec: dict, data_dir: Path) -> tiktoken.Encoding:
    """Rebuild the encoding described by a meta.json `tokenizer` entry."""
    kind = spec["kind"]
    if kind == "gpt2":
        return tiktoken.get_encoding("gpt2")
    if kind == "byte":
        return encoding_from_ranks("byte", byte_ranks())
    if kind == "bpe":
        path = data_dir / spec.get("file", RANKS_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"Tokenizer file {path} is missing; re-run data preparation.")
        return encoding_from_ranks(spec.get("name", "bpe"), load_ranks(path))
    raise ValueError(f"Unknown tokenizer kind {kind!r}; expected one of gpt2, bpe, byte.")


def encode_documents(enc: tiktoken.Encoding, docs: list[str]) -> list[list[int]]:
    """Encode documents as ordinary text (specials in the text are not special), EOT after each."""
    eot = enc.eot_token
    return [ids + [eot] for ids in enc.encode_ordinary_batch(docs, num_threads=2)]
