"""Document filters: each drops what it should, keeps the rest untouched, and counts both."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from parrot_lm.core.errors import DataError
from parrot_lm.data.filters import (
    Decontaminator,
    ExactDedup,
    FilterStats,
    LanguageFilter,
    MinLength,
    apply_filters,
    word_ngrams,
)
from parrot_lm.data.prepare import prepare_corpus
from parrot_lm.data.tokenizer import load_tokenizer


def run(f, docs):
    return [out for doc in docs if (out := f(doc)) is not None]


def test_min_length_drops_short_docs_and_counts_them():
    f = MinLength(10)
    docs = ["long enough doc", "short", "   padded   ", "0123456789", ""]
    assert run(f, docs) == ["long enough doc", "0123456789"]
    assert f.stats.to_dict() == {
        "name": "min_length",
        "docs_in": 5,
        "docs_out": 2,
        "chars_in": sum(map(len, docs)),
        "chars_out": 25,
        "tokens_in": None,
        "tokens_out": None,
        "removed": {"too_short": 3},
    }


def test_exact_dedup_normalises_and_keeps_first_occurrences_in_order():
    docs = [
        "Hello world",
        "something else",
        "Ｈｅｌｌｏ ｗｏｒｌｄ",  # fullwidth: NFKC folds it to "Hello world"
        "  hello\n\t  WORLD  ",
        "Something   Else",
        "ﬁne",  # ligature, NFKC "fine"
        "fine",
        "hello worlds",
    ]
    f = ExactDedup()
    assert run(f, docs) == ["Hello world", "something else", "ﬁne", "hello worlds"]
    assert f.stats.removed == {"duplicate": 4}
    assert (f.stats.docs_in, f.stats.docs_out) == (8, 4)
    assert f.stats.chars_out == len("Hello worldsomething elseﬁnehello worlds")
    assert all(len(k) == 16 for k in f.seen)


EN_WORDS = (
    "the cat sat on mat dog runs in park with children and house is big small we like to "
    "read books every day my friend has a red car it was very good weather today"
).split()
DE_WORDS = (
    "die katze sitzt auf der matte hund läuft im park mit kindern und das haus ist groß "
    "klein wir lesen gerne jeden tag bücher mein freund hat ein rotes auto es war sehr gutes "
    "wetter heute"
).split()


# Trains in a fresh interpreter: fastText 0.9.2's trainer reads memory it never initialised, so in
# a process whose heap is already used (torch, NumPy, the other tests of an xdist worker) it
# often diverges to NaN or fits the lines but not the languages. A fresh heap is zeroed pages.
# Prediction is unaffected (a saved model predicts the same in any process). Retries cover the
# rare unlucky seed; the model must classify every training line and fresh draws from the word
# lists (never the test's own sentences) and must not be certain about a half-and-half line.
TRAIN_LID = """
import random, sys
import fasttext
tmp, en, de = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
lines = open(tmp + "/train.txt").read().splitlines()
rng = random.Random(1)
held_out = [
    f"__label__{lang} " + " ".join(rng.choices(vocab, k=8))
    for _ in range(10)
    for lang, vocab in (("en", en), ("de", de))
]
mixed = " ".join(w for pair in zip(en[:4], de[:4]) for w in pair)
failures = []
for seed in range(10):
    try:
        model = fasttext.train_supervised(
            input=tmp + "/train.txt", epoch=50, lr=0.5, wordNgrams=2, minCount=1, dim=16,
            loss="softmax", bucket=10_000, thread=1, seed=seed, verbose=0,
        )  # bucket: the default 2M hash buckets would make a 128 MB file
    except RuntimeError as e:
        failures.append(f"seed {seed}: {e}")
        continue
    wrong = [
        ln for ln in lines + held_out
        if model.predict(ln.split(" ", 1)[1])[0][0] != ln.split(" ", 1)[0]
    ]
    certainty = float(model.predict(mixed)[1][0])
    if not wrong and certainty < 0.99:
        model.save_model(tmp + "/lid.bin")
        sys.exit(0)
    failures.append(f"seed {seed}: {len(wrong)} wrong, half-and-half line at p={certainty:.4f}")
sys.exit("fastText did not learn the two word lists: " + "; ".join(failures))
"""


@pytest.fixture(scope="module")
def lid_model(tmp_path_factory):
    pytest.importorskip("fasttext")
    rng = random.Random(0)
    tmp = tmp_path_factory.mktemp("lid")
    lines = []
    for _ in range(40):
        for lang, vocab in (("en", EN_WORDS), ("de", DE_WORDS)):
            lines.append(f"__label__{lang} " + " ".join(rng.choices(vocab, k=10)))
    (tmp / "train.txt").write_text("\n".join(lines) + "\n")
    args = [sys.executable, "-c", TRAIN_LID, str(tmp), " ".join(EN_WORDS), " ".join(DE_WORDS)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return tmp / "lid.bin", set(lines)


def test_language_filter_keeps_english_and_drops_german(lid_model):
    path, train_lines = lid_model
    english = [
        "My friend likes to read books in the park every day.",
        "The dog and the cat sat on the red mat.\nIt was a very small house.",
        "We like good weather today, the children said.",
    ]
    german = [
        "Mein Freund liest gerne jeden Tag Bücher im Park.",
        "Der Hund und die Katze sitzt auf der roten Matte.\nDas Haus ist sehr klein.",
        "Heute war gutes Wetter, sagen die Kinder.",
    ]
    # Held out: none of these is a training line (those are random draws from the word lists).
    assert not {s.lower() for s in english + german} & {ln.split(" ", 1)[1] for ln in train_lines}
    mixed = [d for pair in zip(english, german, strict=True) for d in pair]
    f = LanguageFilter(path, lang="en")
    assert run(f, mixed) == english
    assert f.stats.removed == {"other_language": 3}
    assert (f.stats.docs_in, f.stats.docs_out) == (6, 3)

    g = LanguageFilter(str(path), lang="de")
    assert run(g, mixed) == german


def test_language_filter_low_confidence(lid_model):
    path, _ = lid_model
    f = LanguageFilter(path, lang="en")
    # Half English, half German words: the evidence is split, so the top label is far from
    # certain; how far varies with fastText's training, so only require room for a threshold
    # above it.
    doc = " ".join(w for pair in zip(EN_WORDS[:4], DE_WORDS[:4], strict=True) for w in pair)
    labels, probs = f.model.predict(doc, k=1)
    assert float(probs[0]) < 0.999
    # Its top label, but a threshold above the probability the model gives it.
    lang, threshold = labels[0].removeprefix("__label__"), (float(probs[0]) + 1.0) / 2
    strict = LanguageFilter(path, lang=lang, threshold=threshold)
    assert strict(doc) is None
    assert strict.stats.removed == {"low_confidence": 1}


def test_prepare_keeps_only_the_asked_language(tmp_path, lid_model):
    """The language filter inside prepare_corpus, on local files: German documents never reach
    the shards, and the report counts them."""
    path, _ = lid_model
    rng = random.Random(7)
    docs = [
        (lang, " ".join(rng.choices(vocab, k=12)))
        for _ in range(20)
        for lang, vocab in (("en", EN_WORDS), ("de", DE_WORDS))
    ]

    def doc_spans(ids, eot):
        ends = [k for k, t in enumerate(ids) if t == eot]
        return zip([0] + [e + 1 for e in ends[:-1]], ends, strict=True)

    corpus = tmp_path / "mixed.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": text}) for _, text in docs) + "\n")
    meta = prepare_corpus(
        tmp_path / "prepared",
        {"kind": "files", "path": str(corpus)},
        {"kind": "char"},
        val_fraction=0.1,
        filters={"language": {"model": str(path), "lang": "en", "threshold": 0.5}},
    )
    (stats,) = meta["filters"]
    assert stats["name"] == "language_en" and stats["removed"] == {"other_language": 20}
    assert stats["docs_out"] == 20
    enc = load_tokenizer(meta["tokenizer"], tmp_path / "prepared")
    text = ""
    for split in ("train", "val"):
        for shard in sorted((tmp_path / "prepared").glob(f"{split}_*.bin")):
            ids = np.fromfile(shard, dtype=meta["dtype"]).tolist()
            spans = doc_spans(ids, meta["eot_id"])
            text += " ".join(enc.decode(ids[i:j]) for i, j in spans) + " "
    kept = set(text.split())
    assert kept <= set(EN_WORDS) and len(kept) > len(EN_WORDS) // 2
    assert not kept & (set(DE_WORDS) - set(EN_WORDS))


def test_language_filter_errors(tmp_path):
    with pytest.raises(DataError, match="make download"):
        LanguageFilter(tmp_path / "lid.176.ftz")
    (tmp_path / "junk.ftz").write_text("not a model")
    with pytest.raises(DataError):
        LanguageFilter(tmp_path / "junk.ftz")
    with pytest.raises(DataError):
        LanguageFilter(tmp_path / "lid.176.ftz", threshold=1.5)


# Eval text and filler use disjoint vocabularies, so only planted text can match.
EVAL_WORDS = [f"e{i}" for i in range(60)]
EVAL_TEXT = " ".join(EVAL_WORDS)


def filler(rng, k):
    return " ".join(f"f{rng.randrange(1000)}" for _ in range(k))


def eval_13grams():
    """Brute force, independent of the module: every 13-gram of the eval text as a tuple."""
    words = EVAL_TEXT.split()
    return {tuple(words[i : i + 13]) for i in range(len(words) - 12)}


def has_eval_13gram(doc, grams):
    words = doc.split()
    return any(tuple(words[i : i + 13]) in grams for i in range(len(words) - 12))


def planted_corpus():
    rng = random.Random(1)
    clean, planted, near = [], [], []
    for _ in range(30):
        clean.append(filler(rng, 40))
        s = rng.randrange(0, 60 - 13)
        planted.append(f"{filler(rng, 20)} {' '.join(EVAL_WORDS[s : s + 13])} {filler(rng, 20)}")
        s = rng.randrange(0, 60 - 12)
        near.append(f"{filler(rng, 20)} {' '.join(EVAL_WORDS[s : s + 12])} {filler(rng, 20)}")
    return clean, planted, near


def test_decontaminator_drop_mode_removes_exactly_planted_docs():
    clean, planted, near = planted_corpus()
    docs = [d for trio in zip(clean, planted, near, strict=True) for d in trio]
    f = Decontaminator({"wikitext_test": [EVAL_TEXT], "other": ["unrelated words " * 10]})
    assert run(f, docs) == [d for pair in zip(clean, near, strict=True) for d in pair]
    assert f.stats.removed == {"wikitext_test": 30}
    assert (f.stats.docs_in, f.stats.docs_out) == (90, 60)
    assert f.contaminated_by(planted[0].upper().replace(" ", ", ")) == ["wikitext_test"]
    assert f.contaminated_by(near[0]) == []


def test_decontaminator_cut_mode_keeps_the_rest():
    clean, planted, near = planted_corpus()
    grams = eval_13grams()
    f = Decontaminator({"wikitext_test": [EVAL_TEXT]}, mode="cut")
    for c, p, n in zip(clean, planted, near, strict=True):
        assert f(c) == c and f(n) == n  # untouched, 12 shared words are not enough
        out = f(p)
        assert out is not None and not has_eval_13gram(out, grams)
        assert out.split() == [w for w in p.split() if w.startswith("f")]
    assert f.stats.removed == {"wikitext_test": 30}
    assert f.stats.docs_out == 90 and f.stats.chars_out < f.stats.chars_in


def test_decontaminator_cut_rechecks_across_joins():
    """Cutting A out of "e0..e5 A e6..e12" joins e0..e12, itself an eval 13-gram: cut it too."""
    grams = eval_13grams()
    a, b = " ".join(EVAL_WORDS[30:43]), " ".join(EVAL_WORDS[44:57])
    doc = f"keep this. {' '.join(EVAL_WORDS[0:4])} {a} {' '.join(EVAL_WORDS[4:8])} {b} "
    doc += f"{' '.join(EVAL_WORDS[8:13])} and this."
    assert has_eval_13gram(doc.replace(a, "").replace(b, ""), grams)  # what a naive cut leaves
    f = Decontaminator({"ev": [EVAL_TEXT]}, mode="cut")
    out = f(doc)
    assert out == "keep this.\nand this."
    assert not any(g in grams for g in word_ngrams(out, 13))


def test_decontaminator_cut_guarantee_on_random_adversarial_docs():
    """Small vocabulary, short n: many overlapping matches and joins; none may survive."""
    rng = random.Random(2)
    vocab = ["a", "b", "c", "d", "e"]
    evals = {"x": [" ".join(rng.choices(vocab, k=200))], "y": [" ".join(rng.choices(vocab, k=50))]}
    n = 5
    bad = set()
    for (text,) in evals.values():
        words = text.split()
        bad |= {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
    f = Decontaminator(evals, n=n, mode="cut")
    cut = 0
    for _ in range(300):
        doc = " ".join(rng.choices(vocab + ["z"], k=rng.randrange(1, 60)))
        out = f(doc)
        if out is not None:
            words = out.split()
            assert not any(tuple(words[i : i + n]) in bad for i in range(len(words)))
            assert set(words) <= set(doc.split())
            cut += out != doc
    assert f.stats.docs_in == 300 and cut > 50 and f.stats.removed["x"] > 50


def test_decontaminator_unicode_words_and_offsets():
    ev = "İstanbul ΟΔΟΣ Straße naïve café"
    f = Decontaminator({"ev": [ev]}, n=3, mode="cut")
    out = f("Before. İSTANBUL ΟΔΟΣ, Straße! after")  # "İ" lowercases to two characters
    assert out == "Before.\n! after"
    assert not set(word_ngrams(out, 3)) & set(word_ngrams(ev, 3))
    assert f.contaminated_by("NAÏVE café ΣΤΡΑΣΣΕ") == []
    assert f.contaminated_by("straße NAÏVE café") == ["ev"]


def test_decontaminator_min_keep_chars_and_errors():
    f = Decontaminator({"ev": [EVAL_TEXT]}, mode="cut", min_keep_chars=50)
    assert f("short " + " ".join(EVAL_WORDS[:13])) is None
    assert f.stats.removed == {"ev": 1, "emptied_by_cut": 1}
    with pytest.raises(DataError, match="empty_set"):
        Decontaminator({"ok": [EVAL_TEXT], "empty_set": ["", "  \n"]})
    with pytest.raises(DataError):
        Decontaminator({"ev": [EVAL_TEXT]}, n=0)
    with pytest.raises(DataError):
        Decontaminator({"ev": [EVAL_TEXT]}, mode="trim")
    with pytest.raises(DataError):
        Decontaminator({})


def test_word_ngrams():
    assert list(word_ngrams("The cat_sat, on  the MAT!", 3)) == [
        ("the", "cat", "sat"),
        ("cat", "sat", "on"),
        ("sat", "on", "the"),
        ("on", "the", "mat"),
    ]
    assert list(word_ngrams("one two", 3)) == []


def test_apply_filters_is_lazy_and_in_order():
    def docs():
        yield "first document, long enough"
        raise AssertionError("consumed past the first document")

    out = apply_filters(docs(), [MinLength(5), ExactDedup()])
    assert next(out) == "first document, long enough"

    class Tag:
        def __init__(self, tag):
            self.tag, self.stats = tag, FilterStats(tag)

        def __call__(self, doc):
            return self.stats.record(doc, doc + self.tag)

    min_len, dedup = MinLength(3), ExactDedup()
    corpus = ["ab", "abc", "ABC", "abcd"]
    assert list(apply_filters(corpus, [min_len, Tag("!"), dedup, Tag("?")])) == ["abc!?", "abcd!?"]
    assert min_len.stats.docs_out == 3 and dedup.stats.docs_in == 3
    assert dedup.stats.removed == {"duplicate": 1}
