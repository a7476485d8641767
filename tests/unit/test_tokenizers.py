"""Offline GPT-2 (data-gym files), the GPT-2 download error, and the char tokenizer; no network."""

from __future__ import annotations

import json
import random

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from parrot_lm.core.errors import DataError
from parrot_lm.data import tokenizer as tok

WORDS = (
    "the cat sat on a mat and ran to the park café naïve résumé Straße über "
    "日本語 テキスト 🦜 🙂👍 don't we'll it's 2024 3.14 1000000 foo_bar x+y=z (hi) [ok] {}"
).split()
SAMPLES = [
    "Plain ASCII: the cat sat on the mat.",
    "Accents: café, naïve, résumé, Straße, über, ÉÀÇ.",
    "Emoji 🦜🙂👍 and a family 👨‍👩‍👧 and flags 🇫🇷.",
    "Whitespace   runs\t\ttabs\n\n\nnewlines   \n  trailing   ",
    "Digits 0123456789 3.14159 1,000,000 and 2024-01-31.",
    "Unseen: Ωμέγα Кириллица ‽ \x00 \x7f <|endoftext|> 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "",
    " ",
]


def make_lines(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 12))
        sep = rng.choice([" ", " ", " ", "  ", "\t", "\n"])
        lines.append(sep.join(words) + rng.choice(["", ".", "!\n", "   "]))
    return lines


@pytest.fixture(scope="module")
def ranks() -> dict[bytes, int]:
    return tok.train_bpe(make_lines(), vocab_size=500)


def write_files(ranks, tmp_path):
    (tmp_path / "gpt2").mkdir()
    vocab_bpe, encoder_json = tmp_path / "gpt2" / "vocab.bpe", tmp_path / "gpt2" / "encoder.json"
    tok.write_data_gym_files(ranks, vocab_bpe, encoder_json)
    return vocab_bpe, encoder_json


# ---- gpt2 from local data-gym files ---------------------------------------------------------


def test_gpt2_offline_files_match_source_encoding(ranks, tmp_path):
    write_files(ranks, tmp_path)
    spec = {"kind": "gpt2", "vocab_bpe": "gpt2/vocab.bpe", "encoder_json": "gpt2/encoder.json"}
    enc = tok.load_tokenizer(spec, tmp_path)  # relative paths resolve against data_dir
    src = tok.encoding_from_ranks("bpe", ranks)
    assert enc._mergeable_ranks == ranks
    for text in SAMPLES + make_lines(50, seed=1):
        ids = enc.encode_ordinary(text)
        assert ids == src.encode_ordinary(text)
        assert enc.decode(ids) == text
        assert enc.decode_bytes(ids) == text.encode("utf-8")
    assert len(enc.encode_ordinary(SAMPLES[0])) < len(SAMPLES[0])  # merges really apply
    assert enc.eot_token == len(ranks) == enc.n_vocab - 1
    assert enc.encode(tok.EOT, allowed_special="all") == [len(ranks)]


def test_gpt2_offline_absolute_paths(ranks, tmp_path):
    vocab_bpe, encoder_json = write_files(ranks, tmp_path)
    spec = {"kind": "gpt2", "vocab_bpe": str(vocab_bpe), "encoder_json": str(encoder_json)}
    enc = tok.load_tokenizer(spec, tmp_path / "elsewhere")
    assert enc.name == "gpt2" and enc.eot_token == len(ranks)


def test_data_gym_files_have_gpt2_format(ranks, tmp_path, monkeypatch):
    """tiktoken's own reader (the one it uses for the real GPT-2 files) agrees with ours."""
    vocab_bpe, encoder_json = write_files(ranks, tmp_path)
    lines = vocab_bpe.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[-1] == ""
    assert len(lines) - 2 == len(ranks) - 256  # one merge per multi-byte token
    encoder = json.loads(encoder_json.read_text(encoding="utf-8"))
    assert encoder["<|endoftext|>"] == len(ranks) and encoder["Ġ"] == ranks[b" "]
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # "" disables tiktoken's cache
    theirs = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe),
        encoder_json_file=str(encoder_json),
        clobber_one_byte_tokens=True,  # our single bytes are ids 0..255 in byte order
    )
    assert theirs == ranks


def test_write_data_gym_rejects_non_bpe_ranks(tmp_path):
    paths = tmp_path / "v.bpe", tmp_path / "e.json"
    base = tok.byte_ranks()
    with pytest.raises(ValueError, match="merge of two"):
        tok.write_data_gym_files({**base, b"abc": 256}, *paths)  # no "ab" or "bc" token
    with pytest.raises(ValueError, match="merge of two"):
        tok.write_data_gym_files({**base, b"abc": 256, b"ab": 257}, *paths)  # "ab" too late
    with pytest.raises(ValueError, match="0..n-1"):
        tok.write_data_gym_files({**base, b"ab": 300}, *paths)
    with pytest.raises(ValueError, match="256 single bytes"):
        tok.write_data_gym_files({bytes([b]): b for b in range(255)}, *paths)
    tok.write_data_gym_files({**base, b"ab": 256, b"abc": 257}, *paths)  # a valid one


def test_gpt2_offline_rejects_bad_files(ranks, tmp_path):
    vocab_bpe, encoder_json = write_files(ranks, tmp_path)
    with pytest.raises(DataError, match="both"):
        tok.load_tokenizer({"kind": "gpt2", "vocab_bpe": str(vocab_bpe)}, tmp_path)
    spec = {"kind": "gpt2", "vocab_bpe": "missing.bpe", "encoder_json": str(encoder_json)}
    with pytest.raises(DataError, match="does not exist"):
        tok.load_tokenizer(spec, tmp_path)
    lines = vocab_bpe.read_text(encoding="utf-8").splitlines()
    vocab_bpe.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # drop the last merge
    with pytest.raises(DataError, match="same byte-level BPE"):
        tok.load_gpt2_from_files(vocab_bpe, encoder_json)


# ---- gpt2 download failure ------------------------------------------------------------------


def test_gpt2_download_failure_is_a_data_error(tmp_path, monkeypatch):
    def offline(blobpath: str) -> bytes:
        raise OSError(f"network is unreachable: {blobpath}")

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "gpt2", raising=False)
    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    with pytest.raises(DataError, match="TIKTOKEN_CACHE_DIR") as info:
        tok.load_tokenizer({"kind": "gpt2"}, tmp_path)
    message = str(info.value)
    assert message.startswith("The GPT-2 vocabulary could not be downloaded")
    assert "tokenizer.vocab_bpe" in message and "tokenizer.encoder_json" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert isinstance(info.value.__cause__, OSError)


# ---- char tokenizer -------------------------------------------------------------------------

CHAR_TEXTS = ["hello world", "hold the door", "éé 🦜"]


def test_char_round_trip_unk_and_eot():
    ct = tok.train_char(CHAR_TEXTS)
    seen = sorted(set("".join(CHAR_TEXTS)))
    assert list(ct.chars) == seen
    assert ct.n_vocab == len(seen) + 2
    assert ct.unk_token == len(seen) and ct.eot_token == len(seen) + 1 == ct.n_vocab - 1
    text = "hello 🦜 door"
    ids = ct.encode_ordinary(text)
    assert len(ids) == len(text) and ct.decode(ids) == text
    assert ct.decode_bytes(ids) == text.encode("utf-8")
    assert ids[0] == seen.index("h")
    assert ct.encode_ordinary("hz!") == [seen.index("h"), ct.unk_token, ct.unk_token]
    assert ct.decode([seen.index("h"), ct.unk_token, ct.eot_token]) == "h\ufffd" + tok.EOT
    assert ct.encode_ordinary(tok.EOT) == [ct._ids.get(c, ct.unk_token) for c in tok.EOT]
    assert ct.encode_ordinary_batch(["he", "", "lo"], num_threads=2) == [
        ct.encode_ordinary("he"),
        [],
        ct.encode_ordinary("lo"),
    ]
    docs = tok.encode_documents(ct, ["hi", "ho"])
    assert [d[-1] for d in docs] == [ct.eot_token] * 2
    with pytest.raises(KeyError):
        ct.decode([ct.n_vocab])


def test_char_max_chars_keeps_most_frequent():
    ct = tok.CharTokenizer.train(["aaaab", "bbc", "cd", "a"], max_chars=2)
    assert ct.chars == ("a", "b")  # a:5, b:3, c:2, d:1
    assert ct.n_vocab == 4
    assert ct.encode_ordinary("abcd") == [0, 1, 2, 2]
    tie = tok.CharTokenizer.train(["zyx", "xyz"], max_chars=2)  # ties: by character
    assert tie.chars == ("x", "y")
    with pytest.raises(ValueError):
        tok.CharTokenizer.train(["ab"], max_chars=0)


def test_char_save_load_and_load_tokenizer(tmp_path):
    ct = tok.train_char(CHAR_TEXTS + ['quotes " \\ and \n newlines'])
    ct.save(tmp_path / tok.CHARS_FILE)
    loaded = tok.CharTokenizer.load(tmp_path / tok.CHARS_FILE)
    assert loaded == ct and loaded.chars == ct.chars and loaded.n_vocab == ct.n_vocab
    via_spec = tok.load_tokenizer({"kind": "char", "file": tok.CHARS_FILE}, tmp_path)
    assert via_spec == ct
    text = 'hello "world"\n'
    assert via_spec.encode_ordinary(text) == ct.encode_ordinary(text)
    with pytest.raises(DataError, match="nope.json is missing"):
        tok.load_tokenizer({"kind": "char", "file": "nope.json"}, tmp_path)


def test_a_bpe_short_of_its_vocab_says_so_and_meta_has_the_real_size(tmp_path, caplog):
    """A small corpus runs out of merges before vocab_size: one warning, and the tokenizer entry
    is named and sized by what was learned (the requested size kept beside it)."""
    from parrot_lm.data.prepare import prepare_corpus

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"the cat sat on mat {i % 3}" for i in range(40)))
    source = {"kind": "files", "path": str(corpus), "sample_by": "paragraph"}
    with caplog.at_level("WARNING", logger="parrot_lm.data.prepare"):
        meta = prepare_corpus(tmp_path / "out", source, {"kind": "bpe", "vocab_size": 2000})
    learned = meta["vocab_size"]
    assert learned < 2000
    assert meta["tokenizer"]["vocab_size"] == learned
    assert meta["tokenizer"]["name"] == f"bpe{learned}"
    assert meta["tokenizer"]["requested_vocab_size"] == 2000
    warnings = [r.getMessage() for r in caplog.records if "BPE learned" in r.getMessage()]
    assert warnings == [
        f"The BPE learned {learned} tokens of the 2000 requested (data.tokenizer.vocab_size): "
        f"the corpus has no more merges to learn; the vocabulary is {learned}."
    ]
