"""`scripts/evaluate.py` on a run trained by train.py: the same number as training's validation,
text files, and bad input as one sentence from the real process."""

import json
import math
import re
import shutil

import pytest
import torch

from parrot_lm.runs.loading import load_model
from tests.helpers import ROOT, TINY_RUN_STEPS, assert_user_error, run_cli

# Scheduling only (tests/conftest.py hands the longest files out first):
# the session's tiny run (if first) and four evaluations.
SCHEDULE_SECONDS = 45


def test_evaluate_cli_agrees_with_training_validation(tiny_run, tmp_path):
    """Same split, same windows (stride = context, training's default), same number."""
    run_dir, log = tiny_run
    run_dir = shutil.copytree(run_dir, tmp_path / "run")  # the run is shared: write to a copy
    logged = re.search(rf"step {TINY_RUN_STEPS}: val/loss ([0-9.]+)", log)
    assert logged, log[-2000:]
    out = tmp_path / "r.json"
    proc = run_cli(
        ["scripts/evaluate.py", f"ckpt={run_dir}", "stride=32", f"output={out}"], cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["step"] == TINY_RUN_STEPS and result["stride"] == 32
    assert result["loss"] == pytest.approx(float(logged.group(1)), abs=1e-4)  # the log's 4 digits
    # To 1e-5 against the value training logged (kept in the checkpoint it evaluates).
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    trained = ckpt["last_validation"]
    assert trained["step"] == TINY_RUN_STEPS
    assert result["loss"] == pytest.approx(trained["metrics"]["val/loss"], abs=1e-5)
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]))
    assert 0 < result["bits_per_byte"] < result["loss"]  # several bytes per BPE token
    # Word-level perplexity: the same total NLL over the words of the scored text.
    assert 0 < result["words"] < result["tokens"]
    assert result["ppl"] == pytest.approx(
        result["word_ppl"] ** (result["words"] / result["tokens"])
    )
    overlapping = run_cli(["scripts/evaluate.py", f"ckpt={run_dir}", "stride=8"], cwd=ROOT)
    assert overlapping.returncode == 0, overlapping.stderr[-2000:]
    default_out = run_dir / "eval" / "last-val-stride8.json"
    # More left context per token: lower (or equal) loss than non-overlapping windows.
    assert json.loads(default_out.read_text())["loss"] <= result["loss"] + 1e-6


def test_evaluate_text_files(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    text = tmp_path / "held_out.txt"
    text.write_text("Once upon a time, there was a little dog named Max. " * 20)
    proc = run_cli(
        ["scripts/evaluate.py", f"ckpt={run_dir}", "eval_set=text",
         f"eval_set.source.path={text}", f"output={tmp_path / 'r.json'}"],
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    enc = load_model(run_dir).tokenizer
    first = enc.decode_bytes(enc.encode_ordinary(text.read_text())[:1])  # never scored
    assert result["eval_set"] == "text"
    assert result["bytes"] == len(text.read_bytes()) - len(first)


def test_evaluate_script_refuses_a_missing_checkpoint_in_one_sentence(tmp_path):
    """The real process: exit 2, the sentence on stderr, no traceback (every other bad input
    runs main() in-process: tests/integration/test_evaluate_main.py)."""
    proc = run_cli(["scripts/evaluate.py", f"ckpt={tmp_path / 'x.ckpt'}"], cwd=ROOT)
    assert_user_error(proc, "does not exist")
