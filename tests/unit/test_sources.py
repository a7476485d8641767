"""Local files of every supported type load through the same datasets path as the hub."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parrot_lm.core.errors import DataError
from parrot_lm.data.sources import iter_documents, resolve_files

DOCS = ["First story.\nIt has two lines.", "Second story, one line.", "Third: ünïcödé ✓."]


def files_source(path, **kw):
    return {"kind": "files", "path": str(path), **kw}


def test_txt_folder_one_document_per_file(tmp_path):
    for i, doc in enumerate(DOCS):
        (tmp_path / "corpus" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / f"sub{i % 2}" / f"{i}.txt").write_text(doc, encoding="utf-8")
    got = list(iter_documents(files_source(tmp_path / "corpus")))
    assert sorted(d.strip() for d in got) == sorted(DOCS)


def test_txt_by_line(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    got = list(iter_documents(files_source(tmp_path / "a.txt", sample_by="line")))
    assert got == ["one", "two", "three"]


def test_jsonl_with_text_field_and_limit(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(DOCS)))
    assert list(iter_documents(files_source(path, text_field="body"))) == DOCS
    assert list(iter_documents(files_source(path, text_field="body", limit=2))) == DOCS[:2]
    with pytest.raises(DataError, match="no field 'text'"):
        list(iter_documents(files_source(path)))


def test_parquet_glob(tmp_path):
    for i in range(2):
        pq.write_table(pa.table({"text": DOCS[i::2]}), tmp_path / f"part-{i}.parquet")
    got = list(iter_documents(files_source(tmp_path / "part-*.parquet")))
    assert got == DOCS[0::2] + DOCS[1::2]


def test_non_utf8_is_rejected_or_replaced(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(DataError, match="not UTF-8"):
        list(iter_documents(files_source(tmp_path / "bad.txt")))
    got = list(iter_documents(files_source(tmp_path / "bad.txt", encoding_errors="replace")))
    assert got == ["caf\ufffd au lait"]


def test_missing_and_mixed_paths(tmp_path):
    with pytest.raises(DataError, match="No data files found"):
        resolve_files(tmp_path / "missing.txt")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.parquet").write_bytes(b"PAR1")
    (tmp_path / "c.txt").write_text("y")
    (tmp_path / "d.txt").write_text("z")
    runs = resolve_files(tmp_path)  # sorted files, consecutive ones of a kind grouped
    assert [(b, [f.rsplit("/", 1)[1] for f in fs]) for b, fs in runs] == [
        ("text", ["a.txt"]),
        ("parquet", ["b.parquet"]),
        ("text", ["c.txt", "d.txt"]),
    ]
    (tmp_path / "e.csv").write_text("q")
    with pytest.raises(
        DataError, match=r"must each be .txt, .jsonl, .json or .parquet; found \['.csv'\]"
    ):
        resolve_files(str(tmp_path / "*.*"))


def test_mixed_txt_and_jsonl_folder_in_sorted_file_order(tmp_path):
    """text_field applies to the .jsonl records, sample_by to the .txt files; the documents come
    file by file in sorted order."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("first para\n\nsecond para\n")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"body": "record one", "text": "not this"})
        + "\n"
        + json.dumps({"body": "record two"})
        + "\n"
    )
    (tmp_path / "sub" / "c.txt").write_text("last file")
    source = files_source(tmp_path, sample_by="paragraph", text_field="body")
    got = [d.strip() for d in iter_documents(source)]
    assert got == ["first para", "second para", "record one", "record two", "last file"]
    assert [d.strip() for d in iter_documents({**source, "limit": 3})] == got[:3]
    with pytest.raises(DataError, match="holdout needs files of one kind"):
        list(iter_documents({**source, "holdout": {"test_size": 0.5, "seed": 0}}))


def test_hub_failure_is_one_sentence(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="Could not load hub dataset 'roneneldan/TinyStories'"):
        list(iter_documents({"kind": "hub", "name": "roneneldan/TinyStories"}))


def test_unknown_kind():
    with pytest.raises(DataError, match="Unknown data source kind"):
        list(iter_documents({"kind": "ftp"}))


def test_holdout_split_is_seeded_disjoint_and_complete(tmp_path):
    """nanoGPT's OWT val split is `train_test_split(test_size, seed)`'s test part; both parts
    come from the same seeded permutation, so they partition the corpus the same way each time."""
    docs = [f"document number {i}" for i in range(400)]
    path = tmp_path / "owt.jsonl"
    path.write_text("\n".join(json.dumps({"text": d}) for d in docs))

    def part(name, seed=2357):
        holdout = {"test_size": 0.05, "seed": seed, "part": name}
        return list(iter_documents(files_source(path, holdout=holdout, cache_dir=str(tmp_path))))

    test, train = part("test"), part("train")
    assert len(test) == 20 and len(train) == 380
    assert sorted(test + train) == sorted(docs)
    assert part("test") == test
    assert test != docs[-20:] and set(part("test", seed=1)) != set(test)  # shuffled by the seed
    with pytest.raises(DataError, match="part must be 'train' or 'test'"):
        part("val")
