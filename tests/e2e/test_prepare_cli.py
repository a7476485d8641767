"""scripts/prepare.py on local files: build, skip, verify, force, and train on the result."""

import json

import pytest

from parrot_lm.data.stories import generate_stories
from tests.helpers import ROOT, TINY_MODEL, assert_user_error, run_cli, train_cli


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    docs = generate_stories(150, seed=3)
    path.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    return path


def prepare(tmp_path, corpus, *flags):
    args = [
        "scripts/prepare.py",
        "data=local",
        f"data.source.path={corpus}",
        f"data.data_dir={tmp_path / 'prepared'}",
        "data.tokenizer.vocab_size=320",
        *flags,
    ]
    return run_cli(args, cwd=ROOT)


def test_prepare_skip_verify_force(tmp_path, corpus):
    proc = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["train"]["num_documents"] + summary["val"]["num_documents"] == 150
    assert summary["vocab_size"] <= 320
    meta = tmp_path / "prepared" / "meta.json"
    stamp = meta.stat().st_mtime_ns

    proc = prepare(tmp_path, corpus, "--verify")
    assert proc.returncode == 0 and "verified" in proc.stdout
    assert meta.stat().st_mtime_ns == stamp  # valid artifact reused

    proc = prepare(tmp_path, corpus, "--force")
    assert proc.returncode == 0 and meta.stat().st_mtime_ns != stamp

    shard = tmp_path / "prepared" / "train_000.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF  # same size, different content: only a checksum sees it
    shard.write_bytes(bytes(data))
    assert_user_error(prepare(tmp_path, corpus, "--verify"), "Checksum mismatch")


def test_train_on_prepared_local_corpus(tmp_path, corpus):
    assert prepare(tmp_path, corpus).returncode == 0
    proc = train_cli(
        "data=prepared",
        f"data.data_dir={tmp_path / 'prepared'}",
        *TINY_MODEL,
        "data.batch_size=8",
        "trainer.max_steps=3",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "sample.max_new_tokens=5",
        root_dir=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--- sample ---" in proc.stdout


def test_missing_eval_set_is_one_sentence(tmp_path, corpus):
    proc = prepare(
        tmp_path,
        corpus,
        "+data.filters.decontaminate.eval_sets.owt_eval.kind=files",
        f"+data.filters.decontaminate.eval_sets.owt_eval.path={tmp_path / 'no_such_eval'}",
    )
    assert_user_error(proc, "No data files found")
    assert not (tmp_path / "prepared" / "meta.json").exists()


def test_bad_inputs(tmp_path):
    assert_user_error(prepare(tmp_path, tmp_path / "missing.jsonl"), "No data files found")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_user_error(prepare(tmp_path, empty), "the corpus has no documents")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 " * 100)
    assert_user_error(prepare(tmp_path, bad), "not UTF-8")
    good = tmp_path / "good.txt"
    good.write_text("Some text. " * 50)
    proc = run_cli(
        [
            "scripts/prepare.py",
            "data=local",
            f"data.source.path={good}",
            "data.tokenizer.kind=sentencepiece",
            f"data.data_dir={tmp_path / 'x'}",
        ],
        cwd=ROOT,
    )
    assert_user_error(proc, "Unknown tokenizer kind 'sentencepiece'")


def test_filters_and_char_tokenizer_end_to_end(tmp_path):
    stories = generate_stories(60, seed=5)
    eval_text = stories[0]  # an "eval set" whose text also sits in the training data
    (tmp_path / "eval.txt").write_text(eval_text)
    docs = stories + stories[10:20] + ["tiny"]  # 10 exact duplicates and one short doc
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in docs))
    proc = prepare(
        tmp_path,
        corpus,
        "data.filters.min_chars=20",
        "data.tokenizer.kind=char",
        "+data.filters.decontaminate.n=13",
        f"+data.filters.decontaminate.eval_sets.story0.path={tmp_path / 'eval.txt'}",
        "+data.filters.decontaminate.eval_sets.story0.kind=files",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    filters = report["filters"]
    assert filters["min_length"]["removed"] == {"too_short": 1}
    assert filters["exact_dedup"]["removed"] == {"duplicate": 10}
    assert filters["decontaminate_drop"]["removed"]["story0"] >= 1
    assert filters["min_length"]["docs_in"] == len(docs)
    # Tokens per filter, counted with the corpus's char tokenizer (one token per character).
    assert filters["min_length"]["tokens_in"] - filters["min_length"]["tokens_out"] == len("tiny")
    dup = filters["exact_dedup"]
    assert dup["tokens_in"] - dup["tokens_out"] == sum(map(len, stories[10:20]))
    assert filters["min_length"]["tokens_out"] == dup["tokens_in"]
    written = sum(report[s]["num_tokens"] - report[s]["num_documents"] for s in ("train", "val"))
    assert filters["decontaminate_drop"]["tokens_out"] == written
    assert report["train"]["num_documents"] + report["val"]["num_documents"] <= 59
    from parrot_lm.data.shards import read_meta
    from parrot_lm.data.tokenizer import load_tokenizer

    meta = read_meta(tmp_path / "prepared")
    enc = load_tokenizer(meta["tokenizer"], tmp_path / "prepared")
    assert meta["tokenizer"]["kind"] == "char" and enc.n_vocab < 100
    assert enc.decode(enc.encode_ordinary("Once upon a time")) == "Once upon a time"

    # Independently of the filter's hashing: decode the written training tokens and look for
    # every 13-word sequence of the eval text with plain string code.
    import re

    import numpy as np

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[^\W_]+", text.lower())
        return {tuple(words[i : i + 13]) for i in range(len(words) - 12)}

    eval_grams = grams(eval_text)
    assert eval_grams
    for split in ("train", "val"):
        ids = np.concatenate(
            [
                np.fromfile(tmp_path / "prepared" / s["file"], dtype=meta["dtype"])
                for s in meta["splits"][split]["shards"]
            ]
        )
        docs = enc.decode(ids.tolist()).split("<|endoftext|>")
        assert len(docs) > 1
        assert not any(grams(doc) & eval_grams for doc in docs)


def test_val_source_is_the_val_split_and_decontaminates_train(tmp_path):
    """The openwebtext layout on local files: a seeded holdout is the val split, the rest is
    trained on, and training documents sharing a 13-gram with the held-out part are dropped."""
    stories = generate_stories(200, seed=3)
    corpus = tmp_path / "owt.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in stories))
    holdout = "{test_size: 0.1, seed: 2357, part: %s}"
    src = {"kind": "files", "path": str(corpus), "cache_dir": str(tmp_path / "hf")}
    args = [f"data.source.path={corpus}", f"+data.source.cache_dir={tmp_path / 'hf'}"]
    args += [f"+data.source.holdout={holdout % 'train'}"]
    args += ["+data.val_source={" + ", ".join(f"{k}: '{v}'" for k, v in src.items()) + "}"]
    args += [f"+data.val_source.holdout={holdout % 'test'}"]
    args += ["+data.filters.decontaminate={n: 13, eval_sets: {owt_eval: ${data.val_source}}}"]
    proc = run_cli(
        ["scripts/prepare.py", "data=local", *args, f"data.data_dir={tmp_path / 'p'}"], cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["val"]["num_documents"] == 20
    dec = report["filters"]["decontaminate_drop"]
    assert dec["docs_in"] == 180 and report["train"]["num_documents"] == dec["docs_out"]
    # Templated stories share phrases, so some training stories overlap the held-out ones.
    assert dec["removed"]["owt_eval"] == 180 - dec["docs_out"] > 0


def test_language_filter_with_no_model_path_end_to_end(tmp_path):
    """`data.filters.language={lang: en}` needs no download: the bundled lid.176.ftz drops the
    German, Spanish and French documents of a mixed .jsonl, and meta.json counts them."""
    from parrot_lm.data.cli import main
    from parrot_lm.data.shards import read_meta
    from tests.helpers import run_main
    from tests.helpers.languages import ENGLISH, FRENCH, GERMAN, SPANISH

    docs = [*ENGLISH, *GERMAN, *SPANISH, *FRENCH] * 2
    corpus = tmp_path / "mixed.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    proc = run_main(
        main,
        [
            "data=local",
            f"data.source.path={corpus}",
            f"data.data_dir={tmp_path / 'prepared'}",
            "data.tokenizer.kind=char",
            "data.filters.dedup=false",
            "data.val_fraction=0.25",
            "data.filters.language={lang: en}",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (stats,) = read_meta(tmp_path / "prepared")["filters"]
    assert stats["name"] == "language_en"
    assert stats["removed"] == {"other_language": 12}
    assert (stats["docs_in"], stats["docs_out"]) == (20, 8)
    summary = json.loads(proc.stdout)
    assert summary["train"]["num_documents"] + summary["val"]["num_documents"] == 8
