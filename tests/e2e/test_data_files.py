"""Every file the data stage reads, malformed, through the commands a user runs: one sentence
naming the file (and the line), exit 2, no traceback, and every file that was there before
byte-identical after; records without text are counted in the summary and meta.json.

Most run the command's main(argv) in this process (the interpreter boundary is not what they
test); the real process is checked once, on a failed `--force` rebuild."""

import json
import shutil

import pytest

from parrot_lm.data.cli import main as prepare_main
from parrot_lm.data.stories import generate_stories
from tests.helpers import ROOT, assert_user_error, run_cli, run_main, tree_sha256

BYTE = ["data.tokenizer.kind=byte", "data.filters.dedup=false"]


def prepare_args(source, data_dir, *flags):
    return ["data=local", f"data.source.path={source}", f"data.data_dir={data_dir}", *BYTE, *flags]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def good_corpus(tmp_path):
    return write_jsonl(tmp_path / "good.jsonl", [{"text": d} for d in generate_stories(30, seed=1)])


def broken_corpus(tmp_path, line=50):
    rows = [json.dumps({"text": f"Story number {i}."}) for i in range(80)]
    rows[line - 1] = '{"text": "cut off'
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


# ---- records without text: counted, shown, refused when there is nothing else -------------------


def test_records_without_text_are_counted_in_summary_and_meta(tmp_path):
    bad = [{"body": "x"}, {"text": None}, {"text": 7}, {"text": ["a", "b"]}]
    rows = [bad[i % 4] if i % 3 == 0 else {"text": f"Story number {i}."} for i in range(300)]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    proc = run_main(prepare_main, prepare_args(corpus, tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 100 bad rows: 25 without the field and 25 null (both null to datasets), 50 not a string.
    expected = {"missing_field": 0, "null": 50, "not_string": 50, "empty_file": 0}
    assert json.loads(proc.stdout)["skipped_rows"] == expected
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["skipped_rows"] == expected
    splits = meta["splits"].values()
    assert sum(s["num_documents"] for s in splits) == 200


def test_empty_files_and_replaced_bytes_are_in_the_printed_summary(tmp_path):
    """The summary adds up: every file is a document or an empty file, and the documents with
    replaced bytes are counted as read, even the one min_chars drops."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"{i}.txt").write_text(f"Story number {i}, long enough to be kept.")
    (corpus / "empty.txt").write_text("")
    (corpus / "latin1.txt").write_bytes(b"caf\xe9")
    flags = ["data.source.encoding_errors=replace", "data.filters.min_chars=10"]
    proc = run_main(prepare_main, prepare_args(corpus, tmp_path / "out", *flags))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["docs_with_replacement_chars"] == 1
    assert report["skipped_rows"]["empty_file"] == 1
    assert report["filters"]["min_length"]["docs_in"] + 1 == 8  # 8 files, 1 of them empty
    assert report["filters"]["min_length"]["removed"] == {"too_short": 1}


def test_a_source_without_any_text_is_refused_with_why(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": None}, {"text": 1}] * 5)
    before = tree_sha256(tmp_path)
    proc = run_main(prepare_main, prepare_args(corpus, tmp_path / "out"))
    assert_user_error(proc, "yielded no documents: every record was skipped (5 null")
    assert tree_sha256(tmp_path) == before


# ---- malformed corpus files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flags", "fragment"),
    [
        ("One document only.", [], "The corpus has 1 document; at least 2 are needed"),
        ("One.", ["data.source.encoding_errors=ignore-all"], "must be a Python codec error"),
        ("One.", ["data.source.sample_by=chapter"], "sample_by must be one of document"),
    ],
    ids=["one-document", "encoding-errors", "sample-by"],
)
def test_a_one_document_corpus_or_a_bad_reader_setting_is_refused(tmp_path, text, flags, fragment):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    args = prepare_args(corpus, tmp_path / "out" / "corpus", "data.source.sample_by=paragraph")
    proc = run_main(prepare_main, [*args, *flags])
    assert_user_error(proc, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]  # no dirs left


def test_failed_force_rebuild_keeps_the_corpus_byte_for_byte(tmp_path):
    """The real process: a valid corpus, then `--force` from a source broken at line 50."""
    out = tmp_path / "out"
    assert run_main(prepare_main, prepare_args(good_corpus(tmp_path), out)).returncode == 0
    broken = broken_corpus(tmp_path)
    before = tree_sha256(tmp_path)
    proc = run_cli(["scripts/prepare.py", *prepare_args(broken, out), "--force"], cwd=ROOT)
    assert_user_error(proc, f"{broken} line 50 is not valid JSON")
    assert tree_sha256(tmp_path) == before  # old meta.json and shards, and no temporaries


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        (
            "c.jsonl",
            b'{"text": "a"}\n{"text": "b"}\n{"text": "c\n',
            "c.jsonl line 3 is not valid JSON",
        ),
        ("c.jsonl", b'{"text": "a"}\n"b"\n', "c.jsonl line 2 is a JSON str, not an object"),
        ("c.parquet", b"PAR1 and then nothing", "c.parquet is not a readable Parquet file"),
        ("c.txt", b"fine\nfine\ncaf\xe9\n", "c.txt line 3 contains bytes that are not UTF-8"),
        ("c.jsonl", b'{"text": "caf\xe9"}\n', "c.jsonl line 1 contains bytes that are not UTF-8"),
    ],
)
def test_malformed_corpus_file(tmp_path, name, content, fragment):
    (tmp_path / name).write_bytes(content)
    before = tree_sha256(tmp_path)
    proc = run_main(prepare_main, prepare_args(tmp_path / name, tmp_path / "out"))
    assert_user_error(proc, fragment)
    assert tree_sha256(tmp_path) == before


# ---- a prepared corpus's meta.json --------------------------------------------------------------


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda m: [m], "holds a JSON list, not an object"),
        (lambda m: {k: v for k, v in m.items() if k != "vocab_size"}, "has no 'vocab_size'"),
        (lambda m: {**m, "dtype": "int8"}, "has dtype 'int8'"),
        (
            lambda m: {**m, "splits": {"train": {"shards": [{"file": "train_000.bin"}]}}},
            "has no token",
        ),
    ],
)
def test_meta_of_the_wrong_shape(tmp_path, change, fragment):
    out = tmp_path / "out"
    assert run_main(prepare_main, prepare_args(good_corpus(tmp_path), out)).returncode == 0
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps(change(meta)))
    before = tree_sha256(tmp_path)
    proc = run_main(prepare_main, ["data=prepared", f"data.data_dir={out}"])
    assert_user_error(proc, f"{out / 'meta.json'} {fragment}")
    assert "re-run data preparation with --force" in proc.stderr
    assert tree_sha256(tmp_path) == before


# ---- a run's tokenizer, prompts file and run config ---------------------------------------------


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def generate(run_dir, *args):
    from parrot_lm.generation.cli import main

    return run_main(main, [f"ckpt={run_dir}", "max_new_tokens=2", *args])


@pytest.mark.parametrize(
    "file, content, fragment",
    [
        ("tokenizer_spec.json", "{oops", "tokenizer_spec.json is not valid JSON (line 1"),
        ("tokenizer_spec.json", "[1, 2]", "tokenizer_spec.json is not a JSON object"),
        ("tokenizer_spec.json", '{"kind": "wordpiece"}', "unknown tokenizer kind 'wordpiece'"),
        ("tokenizer.tiktoken", "YQ== 0\nYg== 1\n!!! x\n", "tokenizer.tiktoken line 3 is not"),
    ],
)
def test_corrupt_run_tokenizer(run_copy, file, content, fragment):
    (run_copy / "tokenizer" / file).write_text(content)
    before = tree_sha256(run_copy)
    assert_user_error(generate(run_copy, "prompt=Once"), fragment)
    assert tree_sha256(run_copy) == before


def test_prompts_file_that_is_not_text(run_copy, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"Once upon a time\nThe caf\xe9\n")
    proc = generate(run_copy, f"prompts_file={prompts}")
    assert_user_error(proc, f"prompts_file {prompts} line 2 is not UTF-8 text")


def test_run_config_that_is_no_mapping(run_copy):
    from parrot_lm.evaluation.cli import main

    (run_copy / "run_config.yaml").write_text("- not\n- a mapping\n")
    before = tree_sha256(run_copy)
    proc = run_main(main, [f"ckpt={run_copy}"])
    assert_user_error(proc, f"{run_copy / 'run_config.yaml'} holds no run config mapping")
    assert tree_sha256(run_copy) == before
