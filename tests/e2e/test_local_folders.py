"""Your own files: a folder of a few .txt files splits into usable train and val parts (or is
refused at prepare time with one sentence), and a folder may mix .txt and .jsonl files."""

import json

import numpy as np

from parrot_lm.data.cli import main
from parrot_lm.data.shards import read_meta
from parrot_lm.data.stories import generate_stories
from parrot_lm.data.tokenizer import load_tokenizer
from tests.helpers import assert_user_error, run_main


def prepare(tmp_path, corpus, *overrides):
    argv = [
        "data=local",
        f"data.source.path={corpus}",
        f"data.data_dir={tmp_path / 'prepared'}",
        "data.tokenizer.kind=char",  # one token per character: counts below are characters
        *overrides,
    ]
    return run_main(main, argv)


def split_documents(data_dir, split):
    meta = read_meta(data_dir)
    enc = load_tokenizer(meta["tokenizer"], data_dir)
    ids = np.concatenate(
        [
            np.fromfile(data_dir / s["file"], dtype=meta["dtype"])
            for s in meta["splits"][split]["shards"]
        ]
    ).tolist()
    ends = [k for k, t in enumerate(ids) if t == meta["eot_id"]]
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [enc.decode(ids[i:j]) for i, j in zip(starts, ends, strict=True)]


def test_few_txt_files_keep_the_big_one_in_train(tmp_path):
    """Three files, the last (by name) holding 98% of the text: fewer documents than the
    1 / val_fraction = 20 the every-20th rule needs, so val is the file closest to 5% of the
    text, a small one; the big file was the val split before (train 2 documents, 1% of it)."""
    stories = generate_stories(120, seed=1)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    small = {"a_notes.txt": stories[0], "b_letter.txt": stories[1]}
    big = "\n\n".join(stories[2:])
    for name, text in small.items():
        (corpus / name).write_text(text)
    (corpus / "c_book.txt").write_text(big)

    proc = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["train"]["num_documents"] == 2 and summary["val"]["num_documents"] == 1
    (val,) = split_documents(tmp_path / "prepared", "val")
    assert val in small.values()
    assert big in split_documents(tmp_path / "prepared", "train")
    # char tokens: each document's characters plus its EOT
    assert summary["val"]["num_tokens"] == len(val) + 1
    assert summary["train"]["num_tokens"] == len(big) + sum(map(len, small.values())) - len(val) + 2


def test_val_holding_most_of_the_text_is_refused_at_prepare(tmp_path):
    """Twenty files and the 20th (the every-20th rule's pick) is most of the corpus: refused
    before anything is tokenized, with the share and what to do."""
    stories = generate_stories(80, seed=2)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(19):
        (corpus / f"{i:02d}.txt").write_text(stories[i])
    (corpus / "zz_book.txt").write_text("\n\n".join(stories[19:]))
    proc = prepare(tmp_path, corpus)
    assert_user_error(
        proc,
        "The corpus has 20 documents and the val split would hold",
    )
    assert "data.source.sample_by=paragraph" in proc.stderr
    assert not (tmp_path / "prepared" / "meta.json").exists()

    # Splitting inside the files makes enough documents for the every-20th rule.
    proc = prepare(tmp_path, corpus, "data.source.sample_by=paragraph")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["val"]["num_documents"] == 80 // 20
    assert summary["train"]["num_tokens"] > 10 * summary["val"]["num_tokens"]


def test_folder_mixing_txt_and_jsonl(tmp_path):
    stories = generate_stories(8, seed=4)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(stories[0])
    records = [{"content": s, "id": i} for i, s in enumerate(stories[1:6])]
    (corpus / "b.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (corpus / "c.txt").write_text(stories[6] + "\n\n" + stories[7])
    proc = prepare(
        tmp_path, corpus, "data.source.text_field=content", "data.source.sample_by=paragraph"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["train"]["num_documents"] + summary["val"]["num_documents"] == 8
    docs = split_documents(tmp_path / "prepared", "train")
    docs += split_documents(tmp_path / "prepared", "val")
    assert sorted(d.strip() for d in docs) == sorted(stories)
