"""GPT-2's data-gym vocabulary files (vocab.bpe + encoder.json): read for offline machines,
written by exports so other BPE tools read a ParrotLM tokenizer.

tiktoken.load.data_gym_to_mergeable_bpe_ranks parses these too, but it goes through
read_file_cached, which copies even local files into a cache dir keyed by path (and then serves
that copy, stale, if the file changes), and it assigns single-byte ranks in its own order, so
ranks whose bytes are 0..255 (ours) fail its consistency check. Same algorithm, done here.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

from parrot_lm.core.errors import DataError
from parrot_lm.core.io import atomic_write_text
from parrot_lm.data.files import read_json, read_text

# GPT-2's end-of-text token: the special token every ParrotLM tokenizer ends with.
EOT = "<|endoftext|>"
DATA_GYM_HEADER = "#version: 0.2"
FIX_GPT2 = "check tokenizer.vocab_bpe and tokenizer.encoder_json"


def bytes_to_unicode() -> dict[int, str]:
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


def read_data_gym_files(vocab_bpe: Path, encoder_json: Path) -> dict[bytes, int]:
    """The mergeable ranks of GPT-2-style data-gym files; each malformed file is one DataError
    sentence naming it (and the line of vocab.bpe).

    With the real GPT-2 files these are tiktoken's `gpt2` ranks (50256 of them). Ids come from
    encoder.json; vocab.bpe must list exactly the multi-byte tokens, in id order, since
    tiktoken's merge priority is the id.
    """
    decode = {c: b for b, c in bytes_to_unicode().items()}

    def to_bytes(token: str, where: str) -> bytes:
        try:
            return bytes(decode[c] for c in token)
        except KeyError as e:
            raise DataError(f"{where} has token {token!r} outside GPT-2's byte alphabet.") from e

    bpe_lines = read_text(vocab_bpe, FIX_GPT2).splitlines()
    encoder = read_json(encoder_json, FIX_GPT2)
    if not isinstance(encoder, dict) or not all(
        isinstance(rank, int) and not isinstance(rank, bool) for rank in encoder.values()
    ):
        raise DataError(f"{encoder_json} is not a JSON object of token ids; {FIX_GPT2}.")
    merges = []
    for number, line in enumerate(bpe_lines, 1):
        if line and not (number == 1 and line.startswith("#version")):
            parts = line.split()
            where = f"{vocab_bpe} line {number}"
            if len(parts) != 2:
                raise DataError(f"{where} ({line!r}) is not one merge `a b`; {FIX_GPT2}.")
            merges.append(to_bytes(parts[0], where) + to_bytes(parts[1], where))

    ranks = {to_bytes(tok, str(encoder_json)): rank for tok, rank in encoder.items()}
    for special in (EOT.encode(), b"<|startoftext|>"):  # not mergeable, as in tiktoken
        ranks.pop(special, None)
    multi = sorted((t for t in ranks if len(t) > 1), key=ranks.__getitem__)
    if (
        sorted(ranks.values()) != list(range(len(ranks)))
        or any(bytes([b]) not in ranks for b in range(256))
        or merges != multi
    ):
        raise DataError(
            f"{vocab_bpe} and {encoder_json} do not describe the same byte-level BPE "
            "(every byte, then one merge per multi-byte token in id order, ids 0..n-1)."
        )
    return ranks


def write_data_gym_files(ranks: dict[bytes, int], vocab_bpe: Path, encoder_json: Path) -> None:
    """Export ranks in GPT-2's data-gym format, so other BPE tools (and our gpt2 loader) read them.

    Raises ValueError when the ranks are not a byte-level BPE: ids must be 0..n-1, every byte a
    token, and every multi-byte token the merge of two tokens with lower ids.
    """
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("Ranks must be the ids 0..n-1, each used once.")
    if any(bytes([b]) not in ranks for b in range(256)):
        raise ValueError("Ranks must contain all 256 single bytes.")
    if EOT.encode() in ranks:
        raise ValueError(f"{EOT!r} cannot be a mergeable token; it is the special EOT.")
    encode = bytes_to_unicode()

    def to_str(token: bytes) -> str:
        return "".join(encode[b] for b in token)

    merges = []
    for token in sorted((t for t in ranks if len(t) > 1), key=ranks.__getitem__):
        left, right = _split_merge(token, ranks)
        merges.append(f"{to_str(left)} {to_str(right)}")
    encoder = {to_str(t): r for t, r in sorted(ranks.items(), key=lambda item: item[1])}
    encoder[EOT] = len(ranks)
    atomic_write_text(vocab_bpe, "\n".join([DATA_GYM_HEADER, *merges]) + "\n")
    atomic_write_text(encoder_json, json.dumps(encoder, ensure_ascii=False))


def _split_merge(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two lower-ranked tokens `token` is merged from.

    First the split tiktoken's own BPE reaches using only lower ranks (the merge the trainer
    made), else any split into two lower-ranked tokens (the token is then unreachable by BPE,
    but the merge still records it, so the round trip stays exact).
    """
    rank = ranks[token]
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        pairs = [(ranks.get(a + b, rank), i) for i, (a, b) in enumerate(pairwise(parts))]
        best, i = min(pairs)
        if best >= rank:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) == 2:
        return parts[0], parts[1]
    for i in range(1, len(token)):
        left, right = token[:i], token[i:]
        if ranks.get(left, rank) < rank and ranks.get(right, rank) < rank:
            return left, right
    raise ValueError(f"Token {token!r} (rank {rank}) is not a merge of two lower-ranked tokens.")
