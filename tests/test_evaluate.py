"""Strided perplexity: matches a naive per-token loop, agrees with training's val/loss, and the
CLI turns bad input into one sentence."""

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parrot_lm.data.dataset import strided_windows
from parrot_lm.data.tokenizer import byte_ranks, encoding_from_ranks
from parrot_lm.evaluation.perplexity import evaluate_perplexity, token_byte_lengths
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.loading import load_model
from tests.conftest import ROOT, TINY_RUN_STEPS, assert_user_error, run_cli

CTX = 16


def small_model() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=CTX, d_model=32, n_layers=2, n_heads=2))
    for p in model.parameters():
        p.data.normal_(0.0, 0.2)
    return model.eval()


def naive_mean_nll(model: GPT, tokens: np.ndarray, stride: int) -> float:
    """Token t is scored by the first window reaching it: window k = [k*stride, k*stride + ctx)."""
    total = 0.0
    for t in range(1, len(tokens)):
        k = max(0, math.ceil((t - CTX) / stride))
        context = torch.tensor(tokens[k * stride : t], dtype=torch.long)[None]
        logp = F.log_softmax(model(context)[0, -1].double(), dim=-1)
        total -= float(logp[int(tokens[t])].detach())
    return total / (len(tokens) - 1)


@pytest.mark.parametrize("stride", [CTX, 5, 1])
def test_perplexity_equals_naive_per_token_loop(stride):
    model = small_model()
    tokens = np.random.default_rng(0).integers(0, 50, size=101)
    expected = naive_mean_nll(model, tokens, stride)
    for batch_size in (1, 4):
        got = evaluate_perplexity(model, tokens, stride, batch_size)
        assert got["tokens"] == 100
        assert got["loss"] == pytest.approx(expected, abs=1e-5)
        assert got["ppl"] == pytest.approx(math.exp(expected), rel=1e-5)


def test_windows_score_every_token_once():
    for n, stride in [(101, 16), (17, 16), (2, 16), (1000, 7), (50, 1)]:
        scored = []
        for begin, end, n_new in strided_windows(n, CTX, stride):
            assert 0 < end - begin <= CTX and 0 < n_new <= end - begin
            scored += range(end - n_new + 1, end + 1)
        assert scored == list(range(1, n))
    with pytest.raises(Exception, match="stride must be between 1 and the context"):
        strided_windows(100, CTX, CTX + 1)


def test_bits_per_byte_of_a_byte_model_is_loss_over_ln2():
    enc = encoding_from_ranks("byte", byte_ranks())
    model = GPT(GPTConfig(vocab_size=enc.n_vocab, context_length=CTX, d_model=32, n_layers=1,
                          n_heads=2)).eval()  # fmt: skip
    tokens = np.array(enc.encode_ordinary("héllo wörld, " * 10))
    got = evaluate_perplexity(model, tokens, 8, 4, byte_lengths=token_byte_lengths(enc))
    assert got["bytes"] == len(tokens) - 1
    assert got["bits_per_byte"] == pytest.approx(got["loss"] / math.log(2), rel=1e-6)


def test_evaluate_cli_agrees_with_training_validation(tiny_run, tmp_path):
    """Same split, same windows (stride = context, training's default), same number."""
    run_dir, log = tiny_run
    logged = re.search(rf"step {TINY_RUN_STEPS}: val/loss ([0-9.]+)", log)
    assert logged, log[-2000:]
    out = tmp_path / "r.json"
    proc = run_cli(
        ["scripts/evaluate.py", f"ckpt={run_dir}", "stride=32", f"output={out}"], cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["step"] == TINY_RUN_STEPS and result["stride"] == 32
    assert result["loss"] == pytest.approx(float(logged.group(1)), abs=1e-4)
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]))
    assert 0 < result["bits_per_byte"] < result["loss"]  # several bytes per BPE token
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


def test_evaluate_bad_input(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    ev = ["scripts/evaluate.py"]
    assert_user_error(run_cli([*ev, f"ckpt={tmp_path / 'x.ckpt'}"], cwd=ROOT), "does not exist")
    alone = tmp_path / "alone.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", alone)
    assert_user_error(run_cli([*ev, f"ckpt={alone}"], cwd=ROOT), "No tokenizer next to")
    too_far = run_cli([*ev, f"ckpt={run_dir}", "stride=33"], cwd=ROOT)
    assert_user_error(too_far, "stride must be between 1 and the model's context (32)")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert_user_error(run_cli([*ev, f"ckpt={foreign}"], cwd=ROOT), "not a ParrotLM")
    no_split = run_cli([*ev, f"ckpt={run_dir}", "eval_set.split=test"], cwd=ROOT)
    assert_user_error(no_split, "has no 'test' split")
