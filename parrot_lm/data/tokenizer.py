"""Tokenizers, served as `tiktoken.Encoding` (or a look-alike) so every stage shares one.

Kinds: `gpt2` (tiktoken's GPT-2 vocabulary, downloaded on first use, or read from local data-gym
`vocab.bpe` + `encoder.json` files on offline machines), `bpe` (byte-level BPE trained on the
train split with HF `tokenizers`, then exported as tiktoken ranks), `byte`, and `char` (one id per
character seen in training; not expressible as BPE, so a small class with the same interface).
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import tiktoken

from parrot_lm.core.errors import DataError
from parrot_lm.core.io import atomic_dir, atomic_write_text
from parrot_lm.data.files import read_json, read_text
from parrot_lm.data.gpt2_files import EOT, bytes_to_unicode, read_data_gym_files
from parrot_lm.data.gpt2_files import write_data_gym_files as write_data_gym_files

# A byte-level BPE holds the 256 single bytes and the end-of-text token at least.
MIN_BPE_VOCAB = 257
# GPT-2's pre-tokenisation regex; the HF ByteLevel pre-tokenizer uses the same one.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
RANKS_FILE = "tokenizer.tiktoken"
CHARS_FILE = "tokenizer.chars.json"
REBUILD = "re-run data preparation with --force"
GPT2_DOWNLOAD_HINT = (
    "The GPT-2 vocabulary could not be downloaded; run once with network access, set "
    "TIKTOKEN_CACHE_DIR to a directory holding tiktoken's cached GPT-2 files, or set "
    "tokenizer.vocab_bpe and tokenizer.encoder_json to local vocab.bpe and encoder.json files."
)


def train_bpe(texts: Iterable[str], vocab_size: int) -> dict[bytes, int]:
    """Train a byte-level BPE and return tiktoken mergeable ranks (vocab_size - 1 of them).

    One id is left for the EOT special token, so the full vocabulary is exactly vocab_size.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_BPE_VOCAB:
        raise ValueError(f"A byte-level BPE needs vocab_size >= {MIN_BPE_VOCAB}, got {vocab_size}.")
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
    decode = {c: b for b, c in bytes_to_unicode().items()}

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
    atomic_write_text(path, "\n".join(lines) + "\n")


def load_ranks(path: Path) -> dict[bytes, int]:
    """tiktoken ranks saved by `save_ranks`; a malformed line is one DataError sentence naming
    the file and the line."""
    ranks = {}
    for number, line in enumerate(read_text(path, REBUILD).splitlines(), 1):
        if line:
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except ValueError as e:  # binascii.Error is a ValueError too
                raise DataError(
                    f"{path} line {number} is not `<base64 token> <rank>` ({line[:40]!r}); "
                    f"{REBUILD}."
                ) from e
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise DataError(f"{path} does not number its tokens 0..n-1, each once; {REBUILD}.")
    return ranks


def load_tokenizer(spec: dict, data_dir: Path, where: str | Path = "meta.json") -> Tokenizer:
    """Rebuild the encoding described by a meta.json `tokenizer` entry (`where` names the file
    the entry came from, for the sentence when it is wrong)."""
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind == "gpt2":
        return _load_gpt2(spec, data_dir)
    if kind == "byte":
        return encoding_from_ranks("byte", byte_ranks())
    if kind in ("bpe", "char"):
        path = data_dir / spec.get("file", RANKS_FILE if kind == "bpe" else CHARS_FILE)
        if not path.is_file():
            raise DataError(f"Tokenizer file {path} is missing; {REBUILD}.")
        if kind == "char":
            return CharTokenizer.load(path)
        return encoding_from_ranks(spec.get("name", "bpe"), load_ranks(path))
    raise DataError(
        f"{where} names an unknown tokenizer kind {kind!r} (expected gpt2, bpe, byte or char); "
        f"{REBUILD}."
    )


def _load_gpt2(spec: dict, data_dir: Path) -> tiktoken.Encoding:
    """Local data-gym files when the spec names them, else tiktoken's download (or its cache)."""
    vocab_bpe, encoder_json = spec.get("vocab_bpe"), spec.get("encoder_json")
    if vocab_bpe is None and encoder_json is None:
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as e:  # requests/OSError offline, ImportError, ValueError on bad hash
            raise DataError(GPT2_DOWNLOAD_HINT) from e
    if vocab_bpe is None or encoder_json is None:
        raise DataError("Set both tokenizer.vocab_bpe and tokenizer.encoder_json, or neither.")
    paths = [Path(p).expanduser() for p in (vocab_bpe, encoder_json)]
    paths = [p if p.is_absolute() else data_dir / p for p in paths]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"GPT-2 vocabulary file {path} does not exist; "
                "check tokenizer.vocab_bpe and tokenizer.encoder_json."
            )
    return load_gpt2_from_files(*paths)


def load_gpt2_from_files(
    vocab_bpe: Path, encoder_json: Path, name: str = "gpt2"
) -> tiktoken.Encoding:
    """GPT-2 from local data-gym files, for offline machines (see `read_data_gym_files`); EOT is
    the id after the last rank, so the real GPT-2 files give tiktoken's `gpt2`."""
    return encoding_from_ranks(name, read_data_gym_files(vocab_bpe, encoder_json))


# ---- Character-level tokenizer ------------------------------------------------------------


class CharTokenizer:
    """One id per character: the subset of `tiktoken.Encoding` the project uses.

    Ids: the vocabulary characters in sorted order, then `unk_token` (any other character),
    then `eot_token` (last, as for the BPE kinds).
    """

    def __init__(self, chars: Sequence[str], name: str = "char") -> None:
        chars = tuple(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("A char vocabulary must be distinct single characters.")
        self.name = name
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}
        self.unk_token = len(chars)
        self.eot_token = len(chars) + 1
        self.n_vocab = len(chars) + 2
        self.max_token_value = self.n_vocab - 1

    @classmethod
    def train(
        cls, texts: Iterable[str], max_chars: int | None = None, name: str = "char"
    ) -> CharTokenizer:
        """Vocabulary = characters seen in `texts`; with max_chars, only the most frequent."""
        counts = Counter()
        for text in texts:
            counts.update(text)
        chars = list(counts)
        if max_chars is not None:
            if max_chars < 1:
                raise ValueError(f"max_chars must be at least 1, got {max_chars}.")
            # Ties broken by character so the vocabulary does not depend on document order.
            chars = sorted(chars, key=lambda c: (-counts[c], c))[:max_chars]
        return cls(sorted(chars), name=name)

    def encode_ordinary(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_token
        return [ids.get(c, unk) for c in text]

    def encode_ordinary_batch(self, texts: list[str], *, num_threads: int = 8) -> list[list[int]]:
        """num_threads is accepted for tiktoken compatibility; a dict lookup needs no threads."""
        return [self.encode_ordinary(text) for text in texts]

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """unk decodes to U+FFFD and EOT to its text, as tiktoken does; `errors` is unused."""
        out = []
        for t in tokens:
            if 0 <= t < self.unk_token:
                out.append(self.chars[t])
            elif t == self.unk_token:
                out.append("\ufffd")
            elif t == self.eot_token:
                out.append(EOT)
            else:
                raise KeyError(f"Token id {t} is outside the vocabulary of {self.n_vocab}.")
        return "".join(out)

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        return self.decode(tokens).encode("utf-8")

    def save(self, path: Path) -> None:
        data = {"kind": "char", "name": self.name, "chars": list(self.chars)}
        atomic_write_text(path, json.dumps(data, indent=0) + "\n")

    @classmethod
    def load(cls, path: Path) -> CharTokenizer:
        """The vocabulary `save` wrote; DataError naming the file when it is not one."""
        data = read_json(path, REBUILD)
        data = data if isinstance(data, dict) else {}
        try:
            return cls(data.get("chars"), name=str(data.get("name", "char")))
        except (TypeError, ValueError) as e:  # not a list of distinct single characters
            raise DataError(
                f"{path} holds no list of distinct single characters under 'chars'; {REBUILD}."
            ) from e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharTokenizer):
            return NotImplemented
        return (self.name, self.chars) == (other.name, other.chars)

    def __hash__(self) -> int:
        return hash((self.name, self.chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(name={self.name!r}, n_vocab={self.n_vocab})"


def train_char(texts: Iterable[str], max_chars: int | None = None) -> CharTokenizer:
    """Counterpart of `train_bpe` for the `char` kind."""
    return CharTokenizer.train(texts, max_chars=max_chars)


Tokenizer = tiktoken.Encoding | CharTokenizer


def encode_documents(enc: Tokenizer, docs: list[str]) -> list[list[int]]:
    """Encode documents as ordinary text (specials in the text are not special), EOT after each."""
    encoded = enc.encode_ordinary_batch(docs, num_threads=os.cpu_count() or 1)
    for ids in encoded:  # fresh lists from the tokenizer: appending in place saves a copy
        ids.append(enc.eot_token)
    return encoded


# ---- A tokenizer that travels with a run --------------------------------------------------

SPEC_FILE = "tokenizer_spec.json"
_GPT2_FILES = {"vocab_bpe": "vocab.bpe", "encoder_json": "encoder.json"}


def save_tokenizer_dir(spec: dict, data_dir: Path, dest: Path) -> None:
    """Copy a prepared corpus's tokenizer (its meta.json entry and files) into `dest`, so a
    checkpoint can be evaluated, sampled and exported without the training data.

    Written under a temporary name and renamed, so `dest` is complete or absent.
    """
    import shutil

    spec = dict(spec)
    with atomic_dir(dest) as tmp:
        if spec.get("file"):
            shutil.copyfile(Path(data_dir) / spec["file"], tmp / spec["file"])
        for key, name in _GPT2_FILES.items():
            if spec.get(key):
                source = Path(spec[key]).expanduser()
                source = source if source.is_absolute() else Path(data_dir) / source
                shutil.copyfile(source, tmp / name)
                spec[key] = name
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")


def load_tokenizer_dir(path: Path) -> Tokenizer:
    """The tokenizer saved by save_tokenizer_dir."""
    spec_file = Path(path) / SPEC_FILE
    if not spec_file.is_file():
        raise DataError(f"{path} holds no tokenizer ({SPEC_FILE} is missing).")
    spec = read_json(spec_file, "restore the run's tokenizer dir from a copy")
    if not isinstance(spec, dict):
        raise DataError(f"{spec_file} is not a JSON object; restore it from a copy.")
    return load_tokenizer(spec, Path(path), spec_file)
