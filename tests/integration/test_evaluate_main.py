"""The evaluate command's bad input, through its main(argv) in this process (the entry point a
subprocess runs; one real-process case: tests/e2e/test_evaluate_cli.py): one sentence on stderr,
exit 2, no traceback; and a result place that cannot be written, refused before scoring (or,
failing after it, with the scores still on stdout)."""

import errno
import json
import os
import shutil

import pytest
import torch

from parrot_lm.core.io import storage_error
from parrot_lm.evaluation.cli import main
from tests.helpers import assert_user_error, run_main
from tests.helpers.storage import copy_into, read_only_place


def test_evaluate_bad_input(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    assert_user_error(run_main(main, [f"ckpt={tmp_path / 'x.ckpt'}"]), "does not exist")
    alone = tmp_path / "alone.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", alone)
    assert_user_error(run_main(main, [f"ckpt={alone}"]), "No tokenizer next to")
    too_far = run_main(main, [f"ckpt={run_dir}", "stride=33"])
    assert_user_error(too_far, "stride must be between 1 and the model's context (32)")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert_user_error(run_main(main, [f"ckpt={foreign}"]), "not a ParrotLM")
    no_split = run_main(main, [f"ckpt={run_dir}", "eval_set.split=test"])
    assert_user_error(no_split, "has no 'test' split")


def test_evaluate_on_the_cpu_keeps_freed_memory(tiny_run, tmp_path, monkeypatch):
    """Each batch's logits would otherwise be page-faulted in anew (core.hardware)."""
    run_dir, _ = tiny_run
    calls = []
    monkeypatch.setattr("parrot_lm.core.hardware.reuse_freed_memory", lambda: calls.append(1))
    out = tmp_path / "r.json"
    proc = run_main(main, [f"ckpt={run_dir}", "device=cpu", f"output={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert calls == [1] and out.exists()


@pytest.fixture
def read_only_run(tiny_run, tmp_path):
    """A copy of the tiny run that this process cannot write to (tests/helpers/storage.py)."""
    with read_only_place(tmp_path / "ro", copy_into(tiny_run[0], "run")) as run:
        yield run


def test_an_unwritable_result_place_is_refused_before_scoring(read_only_run, tmp_path, monkeypatch):
    """The trial's case: a read-only run dir was scored in full, then only `error: Cannot
    write` came out. Now nothing is read or scored, and the sentence names output=."""

    def read_tokens(*args, **kwargs):
        raise AssertionError("the eval set was read before the result place was checked")

    monkeypatch.setattr("parrot_lm.evaluation.perplexity.load_eval_tokens", read_tokens)
    proc = run_main(main, [f"ckpt={read_only_run}", "device=cpu"])
    assert_user_error(proc, f"Cannot write {read_only_run / 'eval'}/last-val-stride")
    assert proc.stderr.rstrip().endswith("place with output=<file.json>."), proc.stderr
    assert proc.stdout == ""
    assert not (read_only_run / "eval").exists()
    monkeypatch.undo()
    out = tmp_path / "elsewhere" / "r.json"
    proc = run_main(main, [f"ckpt={read_only_run}", "device=cpu", f"output={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == json.loads(out.read_text())


def test_a_write_that_fails_after_scoring_leaves_the_scores_on_stdout(
    tiny_run, tmp_path, monkeypatch
):
    """A disk that fills up while scoring: the result JSON is on stdout (parseable: the logs
    are on stderr) and the sentence says so and names output=."""
    out = tmp_path / "r.json"

    def full_disk(path, text):
        raise storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    monkeypatch.setattr("parrot_lm.evaluation.cli.atomic_write_text", full_disk)
    proc = run_main(main, [f"ckpt={tiny_run[0]}", "device=cpu", f"output={out}"])
    assert_user_error(
        proc,
        f"error: Cannot write {out} (No space left on device); free some disk space or choose "
        "another place with output=<file.json> (the scores are on stdout above).",
    )
    result = json.loads(proc.stdout)
    assert result["checkpoint"].endswith("last.ckpt") and result["loss"] > 0
    assert not out.exists()


def test_an_output_that_cannot_be_a_file_is_refused_before_scoring(tiny_run, tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_main(main, [f"ckpt={tiny_run[0]}", "device=cpu", f"output={tmp_path}"])
    assert_user_error(proc, f"output={tmp_path} is a directory; give a file path, e.g. output=")
    under_a_file = tmp_path / "file" / "r.json"
    proc = run_main(main, [f"ckpt={tiny_run[0]}", "device=cpu", f"output={under_a_file}"])
    assert_user_error(proc, f"is inside {tmp_path / 'file'}, a file; give a path in a directory.")
    assert proc.stdout == "" and (tmp_path / "file").read_text() == "x"
