import json

import numpy as np
import pytest
import torch

from parrot_lm.core.errors import DataError
from parrot_lm.data import tokenizer as tok
from parrot_lm.data.datamodule import TokenDataModule
from parrot_lm.data.dataset import TokenWindows
from parrot_lm.data.prepare import prepare_corpus
from parrot_lm.data.shards import dtype_for_vocab, read_meta, verify_shards
from parrot_lm.data.writer import ShardWriter

TEXTS = [
    "Once upon a time, there was a little girl named Lily. She loved her red ball.",
    "Tom went to the park with his dog. The dog ran after a big stick.",
    "Mia found a shiny key in the garden. She gave the key to her mom.",
] * 20

SOURCE = {"kind": "stories", "num_documents": 200, "seed": 0}
BPE = {"kind": "bpe", "vocab_size": 300}


def test_bpe_round_trips_and_compresses():
    ranks = tok.train_bpe(TEXTS, vocab_size=300)
    assert len(ranks) <= 299 and sorted(ranks.values()) == list(range(len(ranks)))
    enc = tok.encoding_from_ranks("bpe", ranks)
    text = "Lily gave the red ball to Tom. Ünïcödé and emoji 🦜 still round-trip."
    ids = enc.encode_ordinary(text)
    assert enc.decode(ids) == text
    n_small = len(enc.encode_ordinary(TEXTS[0]))
    bigger = tok.encoding_from_ranks("bpe", tok.train_bpe(TEXTS, vocab_size=400))
    assert len(bigger.encode_ordinary(TEXTS[0])) < n_small < len(TEXTS[0].encode()) * 0.75
    assert enc.eot_token == len(ranks) and enc.n_vocab == len(ranks) + 1


def test_ranks_file_round_trip(tmp_path):
    ranks = tok.train_bpe(TEXTS, vocab_size=280)
    tok.save_ranks(ranks, tmp_path / "t.tiktoken")
    assert tok.load_ranks(tmp_path / "t.tiktoken") == ranks


def test_encode_documents_appends_eot_and_ignores_special_text():
    enc = tok.encoding_from_ranks("byte", tok.byte_ranks())
    docs = tok.encode_documents(enc, ["ab", "<|endoftext|>"])
    assert docs[0] == [97, 98, enc.eot_token]
    assert docs[1][-1] == enc.eot_token and enc.eot_token not in docs[1][:-1]


def test_dtype_for_vocab():
    assert dtype_for_vocab(50257) == np.uint16
    assert dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(100277) == np.uint32


def make_shard(tmp_path, tokens, name="s", dtype=np.uint16):
    arr = np.asarray(tokens, dtype=dtype)
    writer = ShardWriter(tmp_path, name, np.dtype(dtype), shard_tokens=10**9)
    writer.write(arr)
    (shard,) = writer.close()
    return tmp_path / shard["file"], arr.size


def test_windows_shift_targets_by_one(tmp_path):
    shard = make_shard(tmp_path, range(100))
    ds = TokenWindows([shard], "uint16", context_length=8)
    assert len(ds) == (100 - 1) // 8
    x, y = ds[2]
    assert x.dtype == torch.int64
    assert x.tolist() == list(range(16, 24))
    assert y.tolist() == list(range(17, 25))
    x, y = ds[len(ds) - 1]
    assert y[-1].item() <= 99
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_span_several_shards_and_uint32(tmp_path):
    a = make_shard(tmp_path, range(70_000, 70_020), "a", np.uint32)
    b = make_shard(tmp_path, range(80_000, 80_030), "b", np.uint32)
    ds = TokenWindows([a, b], "uint32", context_length=9)
    assert len(ds) == 2 + 3
    assert ds[1][0][0].item() == 70_009
    assert ds[2][0][0].item() == 80_000  # windows never straddle two shards
    assert ds[4][1][-1].item() == 80_027


def test_corpus_shorter_than_context_is_refused(tmp_path):
    shard = make_shard(tmp_path, range(8))
    with pytest.raises(DataError, match="fewer than one window"):
        TokenWindows([shard], "uint16", context_length=8)


def test_windows_pickle_without_their_data(tmp_path):
    import pickle

    ds = TokenWindows([make_shard(tmp_path, range(100))], "uint16", context_length=8)
    ds[0]  # opens the memmap
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._maps is None and torch.equal(clone[3][0], ds[3][0])


def test_prepare_writes_meta_and_reuses_it(tmp_path):
    meta = prepare_corpus(tmp_path, SOURCE, BPE, val_fraction=0.1)
    assert meta["dtype"] == "uint16" and meta["eot_id"] == meta["vocab_size"] - 1
    assert meta["splits"]["val"]["num_documents"] == 20
    assert meta["splits"]["train"]["max_token_id"] < meta["vocab_size"]
    assert read_meta(tmp_path) == meta and verify_shards(tmp_path, meta) == []
    train = np.fromfile(tmp_path / "train_000.bin", dtype=np.uint16)
    assert (train == meta["eot_id"]).sum() == 180  # EOT after each train document
    stamp = (tmp_path / "meta.json").stat().st_mtime_ns
    assert prepare_corpus(tmp_path, SOURCE, BPE, val_fraction=0.1) == meta
    assert (tmp_path / "meta.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    with pytest.raises(DataError, match="prepared with another config"):
        prepare_corpus(tmp_path, {**SOURCE, "seed": 1}, BPE, val_fraction=0.1)
    assert read_meta(tmp_path) == meta  # refused, nothing overwritten
    changed = prepare_corpus(tmp_path, {**SOURCE, "seed": 1}, BPE, val_fraction=0.1, force=True)
    assert changed["config_hash"] != meta["config_hash"]


def test_truncated_shard_is_detected_and_rebuilt(tmp_path):
    meta = prepare_corpus(tmp_path, SOURCE, BPE)
    with open(tmp_path / "train_000.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError, match="wrong size"):
        read_meta(tmp_path)
    assert prepare_corpus(tmp_path, SOURCE, BPE) == meta


def test_data_dir_without_meta_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no meta.json"):
        read_meta(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        read_meta(tmp_path / "missing")
    (tmp_path / "empty" / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_meta(tmp_path / "empty")


def test_datamodule_batches(tmp_path):
    dm = TokenDataModule(
        str(tmp_path), context_length=16, batch_size=4, source=SOURCE, tokenizer=BPE
    )
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    enc = dm.load_tokenizer()
    assert enc.n_vocab == json.loads((tmp_path / "meta.json").read_text())["vocab_size"]
    assert enc.decode(enc.encode_ordinary("Once upon a time")) == "Once upon a time"


def test_many_shards_and_parallel_workers_give_the_same_tokens(tmp_path):
    one = prepare_corpus(tmp_path / "one", SOURCE, BPE, shard_tokens=10**9)
    many = prepare_corpus(tmp_path / "many", SOURCE, BPE, workers=2, shard_tokens=2_000)
    shards = many["splits"]["train"]["shards"]
    assert len(shards) > 3 and all(s["num_tokens"] <= 2_000 for s in shards)
    assert verify_shards(tmp_path / "many", many) == []
    joined = np.concatenate(
        [np.fromfile(tmp_path / "many" / s["file"], dtype=np.uint16) for s in shards]
    )
    single = np.fromfile(tmp_path / "one" / "train_000.bin", dtype=np.uint16)
    assert np.array_equal(joined, single)
    assert one["splits"]["train"]["num_tokens"] == many["splits"]["train"]["num_tokens"]

    dm = TokenDataModule(str(tmp_path / "many"), context_length=16, batch_size=4)
    dm.prepare_data()  # no source: reads the prepared corpus as it is
    dm.setup("fit")
    assert len(dm.train_set) == sum((s["num_tokens"] - 17) // 16 + 1 for s in shards)


def test_interrupted_prepare_leaves_no_valid_artifact(tmp_path):
    def boom():
        yield from ["A first document, long enough." * 3] * 50
        raise KeyboardInterrupt

    import parrot_lm.data.prepare as prepare_mod

    real = prepare_mod.iter_documents
    prepare_mod.iter_documents = lambda source, *counts: boom()
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_corpus(tmp_path, {"kind": "files", "path": "x"}, BPE)
    finally:
        prepare_mod.iter_documents = real
    assert not (tmp_path / "meta.json").exists()
    assert not list(tmp_path.glob(".*"))  # the staging area is cleaned up
    with pytest.raises(DataError, match="no meta.json"):
        read_meta(tmp_path)


def test_train_split_too_small_for_one_step_is_refused_at_setup(tmp_path):
    """At setup("fit"), before Lightning's sanity validation runs, not at the first training
    batch after a validation pass."""
    from types import SimpleNamespace

    dm = TokenDataModule(
        str(tmp_path), context_length=16, batch_size=4, source=SOURCE, tokenizer=BPE
    )
    dm.prepare_data()
    windows = len(TokenWindows(dm._shards(dm.meta, "train"), dm.meta["dtype"], 16))
    step = windows // 4 + 1  # accumulated batches of 4 windows: one more than there are
    dm.trainer = SimpleNamespace(accumulate_grad_batches=step, global_rank=0, world_size=1)
    with pytest.raises(DataError, match=f"training split has {windows} windows, fewer than one"):
        dm.setup("fit")
    dm.trainer = SimpleNamespace(accumulate_grad_batches=step - 1, global_rank=0, world_size=1)
    dm.setup("fit")  # exactly enough windows for one optimizer step
