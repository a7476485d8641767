"""Every file the data stage reads: a malformed one is one sentence naming it (and the line),
no record vanishes uncounted, and a failed rebuild leaves the old corpus as it was."""

import errno
import json
import shutil

import pytest

from parrot_lm.core.errors import ConfigError, DataError, StorageError
from parrot_lm.data import tokenizer as tok
from parrot_lm.data.prepare import prepare_corpus
from parrot_lm.data.shards import read_meta
from parrot_lm.data.sources import iter_documents
from tests.helpers import tree_sha256

BYTE = {"kind": "byte"}


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mixed_rows(n=300):
    """n records, a third of them without text: absent, null, or a number / list / object."""
    bad = [{"other": "x"}, {"text": None}, {"text": 5}, {"text": ["a"]}, {"text": {"a": 1}}]
    return [
        bad[(i // 3) % 5] if i % 3 == 2 else {"text": f"Document number {i}."} for i in range(n)
    ]


# ---- records without text ---------------------------------------------------------------------


def test_records_without_text_are_counted_per_reason(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", mixed_rows())
    skipped = {}
    docs = list(iter_documents({"kind": "files", "path": str(path)}, skipped))
    assert len(docs) == 200
    # A JSON line without the field reads as null (datasets fills records out to the columns).
    assert skipped == {"missing_field": 0, "null": 40, "not_string": 60, "empty_file": 0}


def test_a_later_file_without_the_field_is_counted_as_missing(tmp_path):
    jsonl(tmp_path / "a.jsonl", [{"text": "one"}, {"text": "two"}])
    (tmp_path / "b.jsonl").write_text('{"text": null}\n')
    skipped = {}
    assert list(iter_documents({"kind": "files", "path": str(tmp_path)}, skipped)) == ["one", "two"]
    assert skipped["null"] == 1


def test_a_source_of_only_bad_records_is_refused_with_the_reason(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", [{"text": None}, {"text": 3}, {"text": None}])
    with pytest.raises(DataError, match=r"every record was skipped .*2 null.*1 not a string"):
        prepare_corpus(tmp_path / "out", {"kind": "files", "path": str(path)}, BYTE)
    assert not (tmp_path / "out" / "meta.json").exists()


# ---- malformed corpus files -------------------------------------------------------------------


def read_all(path, **source):
    return list(iter_documents({"kind": "files", "path": str(path), **source}))


def test_a_broken_jsonl_line_is_named(tmp_path):
    lines = [json.dumps({"text": f"doc {i}"}) for i in range(80)]
    lines[49] = '{"text": "cut off'
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl line 50 is not valid JSON"):
        read_all(tmp_path / "c.jsonl")
    holdout = {"holdout": {"test_size": 0.1, "seed": 1}, "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(DataError, match=r"c\.jsonl line 50 is not valid JSON"):
        read_all(tmp_path / "c.jsonl", **holdout)  # read by load_dataset itself, not streamed


def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"c\.jsonl line 2 is a JSON list, not an object"):
        read_all(tmp_path / "c.jsonl")


def test_non_utf8_names_file_and_line(tmp_path):
    (tmp_path / "c.jsonl").write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"c\.jsonl line 2 contains bytes that are not UTF-8"):
        read_all(tmp_path / "c.jsonl")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("fine\n")
    (tmp_path / "t" / "b.txt").write_bytes(b"one\ntwo\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"b\.txt line 3 contains bytes that are not UTF-8"):
        read_all(tmp_path / "t")


def test_a_parquet_name_on_something_else_is_named(tmp_path):
    (tmp_path / "c.parquet").write_text("not parquet at all")
    with pytest.raises(DataError, match=r"c\.parquet is not a readable Parquet file"):
        read_all(tmp_path / "c.parquet")


def test_files_with_different_fields(tmp_path):
    jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    jsonl(tmp_path / "b.jsonl", [{"body": "b"}])
    with pytest.raises(DataError, match="do not all have the same fields"):
        read_all(tmp_path)


# ---- tokenizer files --------------------------------------------------------------------------


def test_ranks_file_with_a_garbage_line(tmp_path):
    path = tmp_path / tok.RANKS_FILE
    tok.save_ranks(tok.byte_ranks(), path)
    lines = path.read_text().splitlines()
    lines[6] = "not-base64!! seven"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"tokenizer\.tiktoken line 7 is not `<base64 token> <rank>`"
    ):
        tok.load_tokenizer({"kind": "bpe", "file": tok.RANKS_FILE}, tmp_path)
    path.write_text("YQ== 0\nYg== 5\n")  # ranks with a gap
    with pytest.raises(DataError, match="does not number its tokens 0..n-1"):
        tok.load_ranks(path)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"chars": ["a", ', "is not valid JSON (line 1"),
        ('["a", "b"]', "holds no list of distinct single characters"),
        ('{"chars": ["ab", "c"]}', "holds no list of distinct single characters"),
        ('{"chars": null}', "holds no list of distinct single characters"),
    ],
)
def test_corrupt_chars_file(tmp_path, content, fragment):
    (tmp_path / tok.CHARS_FILE).write_text(content)
    with pytest.raises(DataError, match="tokenizer.chars.json") as info:
        tok.load_tokenizer({"kind": "char", "file": tok.CHARS_FILE}, tmp_path)
    assert fragment in str(info.value)


def test_corrupt_gpt2_files(tmp_path):
    tok.write_data_gym_files(tok.byte_ranks(), tmp_path / "vocab.bpe", tmp_path / "encoder.json")
    spec = {"kind": "gpt2", "vocab_bpe": "vocab.bpe", "encoder_json": "encoder.json"}
    assert tok.load_tokenizer(spec, tmp_path).n_vocab == 257
    (tmp_path / "encoder.json").write_text('{"a": 0,')
    with pytest.raises(DataError, match=r"encoder\.json is not valid JSON \(line 1"):
        tok.load_tokenizer(spec, tmp_path)
    (tmp_path / "encoder.json").write_text('["a"]')
    with pytest.raises(DataError, match=r"encoder\.json is not a JSON object of token ids"):
        tok.load_tokenizer(spec, tmp_path)
    tok.write_data_gym_files(tok.byte_ranks(), tmp_path / "vocab.bpe", tmp_path / "encoder.json")
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\na b c\n")
    with pytest.raises(DataError, match=r"vocab\.bpe line 2 \('a b c'\) is not one merge"):
        tok.load_tokenizer(spec, tmp_path)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "tokenizer_spec.json is not valid JSON (line 1"),
        ('["bpe"]', "tokenizer_spec.json is not a JSON object"),
        ('{"kind": "sentencepiece"}', "names an unknown tokenizer kind 'sentencepiece'"),
    ],
)
def test_corrupt_tokenizer_spec(tmp_path, content, fragment):
    (tmp_path / tok.SPEC_FILE).write_text(content)
    with pytest.raises(DataError) as info:
        tok.load_tokenizer_dir(tmp_path)
    assert fragment in str(info.value)


# ---- meta.json --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("prepared")
    docs = jsonl(data_dir.parent / "docs.jsonl", [{"text": f"Story {i}."} for i in range(20)])
    prepare_corpus(data_dir, {"kind": "files", "path": str(docs)}, BYTE, 0.2)
    return data_dir


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda m: [m], "holds a JSON list, not an object"),
        (lambda m: {k: v for k, v in m.items() if k != "splits"}, "has no 'splits' (an object)"),
        (lambda m: {k: v for k, v in m.items() if k != "dtype"}, "has dtype None"),
        (lambda m: {**m, "dtype": "float64"}, "has dtype 'float64'"),
        (lambda m: {**m, "vocab_size": "many"}, "has no 'vocab_size' (an integer)"),
        (lambda m: {**m, "splits": {"train": {}}}, "has no list of shards for split 'train'"),
        (lambda m: {**m, "splits": {"train": {"shards": [{"num_tokens": 3}]}}}, "no file name"),
        (lambda m: {**m, "splits": {"train": {"shards": [{"file": "../x.bin"}]}}}, "no file name"),
        (lambda m: {**m, "splits": {"train": {"shards": [{"file": "a.bin"}]}}}, "no token count"),
        (lambda m: {**m, "format": "other/2"}, "has format 'other/2'"),
    ],
)
def test_meta_of_the_wrong_shape(prepared, tmp_path, change, fragment):
    data_dir = tmp_path / "copy"
    shutil.copytree(prepared, data_dir)
    meta = json.loads((data_dir / "meta.json").read_text())
    (data_dir / "meta.json").write_text(json.dumps(change(meta)))
    with pytest.raises(DataError) as info:
        read_meta(data_dir)
    assert fragment in str(info.value) and str(data_dir / "meta.json") in str(info.value)
    assert "--force" in str(info.value)


# ---- a rebuild that fails keeps the old corpus --------------------------------------------------


def test_force_rebuild_failing_midway_keeps_the_old_artifact(prepared, tmp_path):
    data_dir = tmp_path / "copy"
    shutil.copytree(prepared, data_dir)
    before = tree_sha256(data_dir)
    lines = [json.dumps({"text": f"Another story {i}."}) for i in range(80)]
    lines[49] = "{broken"
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    bad = {"kind": "files", "path": str(tmp_path / "bad.jsonl")}
    with pytest.raises(DataError, match=r"bad\.jsonl line 50 is not valid JSON"):
        prepare_corpus(data_dir, bad, BYTE, 0.2, force=True)
    assert tree_sha256(data_dir) == before  # byte for byte, and no temporaries left


def test_force_rebuild_out_of_space_keeps_the_old_artifact(prepared, tmp_path, monkeypatch):
    import parrot_lm.data.writer as writer

    data_dir = tmp_path / "copy"
    shutil.copytree(prepared, data_dir)
    before = tree_sha256(data_dir)

    def full(self, ids):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.ShardWriter, "write", full)
    source = json.loads((data_dir / "meta.json").read_text())["source"]
    with pytest.raises(StorageError, match="No space left on device.*free some disk space"):
        prepare_corpus(data_dir, source, BYTE, 0.2, force=True)
    assert tree_sha256(data_dir) == before


def test_a_rebuild_replaces_every_file_of_the_old_artifact(prepared, tmp_path):
    data_dir = tmp_path / "copy"
    shutil.copytree(prepared, data_dir)
    (data_dir / "train_007.bin").write_bytes(b"\0\0")  # a shard of some older, larger artifact
    (data_dir / "notes.txt").write_text("mine")  # not ParrotLM's: stays
    source = json.loads((data_dir / "meta.json").read_text())["source"]
    meta = prepare_corpus(data_dir, source, {"kind": "char"}, 0.2, force=True)
    files = {p.name for p in data_dir.iterdir()}
    assert files == {"meta.json", "notes.txt", tok.CHARS_FILE, "train_000.bin", "val_000.bin"}
    assert read_meta(data_dir)["tokenizer"]["kind"] == "char" == meta["tokenizer"]["kind"]


# ---- prompts and run configs --------------------------------------------------------------------


def test_prompts_file_that_is_not_text(tmp_path):
    from parrot_lm.generation.cli import read_prompts

    (tmp_path / "p.txt").write_bytes(b"Once\ncaf\xe9\n")
    with pytest.raises(ConfigError, match=r"p\.txt line 2 is not UTF-8 text"):
        read_prompts(None, str(tmp_path / "p.txt"))
    with pytest.raises(ConfigError, match="is not a file"):
        read_prompts(None, str(tmp_path))


@pytest.mark.parametrize("content", ["- a\n- b\n", "", "a: [1,\n"])
def test_run_config_that_is_no_mapping(tmp_path, content):
    from parrot_lm.runs.run_dir import RUN_CONFIG, RunDir

    (tmp_path / RUN_CONFIG).write_text(content)
    with pytest.raises(ConfigError, match=RUN_CONFIG):
        RunDir(tmp_path).load_config()


# ---- what preparation reports: every document accounted for -----------------------------------


def test_empty_txt_files_are_counted_not_dropped_unseen(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"{i}.txt").write_text(f"Story {i} is long enough to keep." * 3)
    (corpus / "empty.txt").write_text("")
    meta = prepare_corpus(
        tmp_path / "out", {"kind": "files", "path": str(corpus)}, BYTE, 0.2, filters={"dedup": True}
    )
    # 7 files: 6 documents into the filters, 1 empty file counted as skipped.
    assert meta["skipped_rows"]["empty_file"] == 1
    assert meta["filters"][0]["docs_in"] + meta["skipped_rows"]["empty_file"] == 7


def test_replacement_chars_are_counted_as_read_before_filters(tmp_path):
    """A document with replaced bytes that a filter then drops is still counted: the count is
    of what was decoded, not of what was kept."""
    (tmp_path / "a.txt").write_bytes(b"caf\xe9")  # dropped by min_chars below
    for i in range(4):
        (tmp_path / f"b{i}.txt").write_text(f"A clean document number {i}, long enough.")
    source = {"kind": "files", "path": str(tmp_path / "*.txt"), "encoding_errors": "replace"}
    meta = prepare_corpus(tmp_path / "out", source, BYTE, 0.25, filters={"min_chars": 10})
    assert meta["filters"][0]["removed"] == {"too_short": 1}
    assert meta["docs_with_replacement_chars"] == 1


def test_the_filter_summary_is_logged_by_prepare_corpus_itself(tmp_path, caplog):
    """parrot-prepare and a training run both call prepare_corpus: the line comes from there."""
    docs = [{"text": f"Document number {i} of the corpus."} for i in range(8)]
    path = jsonl(tmp_path / "c.jsonl", [*docs, docs[0], {"other": 1}, {"text": None}])
    with caplog.at_level("INFO", logger="parrot_lm.data.prepare"):
        prepare_corpus(
            tmp_path / "out", {"kind": "files", "path": str(path)}, BYTE, filters={"dedup": True}
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Filters:")]
    assert lines == ["Filters: exact_dedup 9 -> 8 docs (removed 1 duplicate); skipped 2 null."]
