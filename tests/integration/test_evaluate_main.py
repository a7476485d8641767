"""The evaluate command's bad input, through its main(argv) in this process (the entry point a
subprocess runs; one real-process case: tests/e2e/test_evaluate_cli.py): one sentence on stderr,
exit 2, no traceback."""

import shutil

import torch

from parrot_lm.evaluation.cli import main
from tests.helpers import assert_user_error, run_main


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
