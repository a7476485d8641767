"""scripts/plan.py: its counts equal the model's and flops.py's own, its token arithmetic, its
refusal when the run cannot fit, and its probe against a real short training run."""

from __future__ import annotations

import pytest

from parrot_lm.model import GPT
from parrot_lm.planning import cli, counts
from parrot_lm.planning.cli import main
from parrot_lm.training.flops import flops_per_token
from tests.helpers.cli import assert_user_error, run_main
from tests.helpers.config import TINY_DATA, TINY_MODEL, compose_train


@pytest.mark.parametrize("model", ["tiny", "deep_narrow"])
def test_counts_equal_the_models_own(tmp_path, model):
    cfg = compose_train(tmp_path, [f"model={model}", "model.vocab_size=50257"])
    gpt_cfg = counts.model_config(cfg, 50257)
    params = counts.count_params(gpt_cfg)
    built = GPT(gpt_cfg)
    assert params.total == built.num_params()
    assert params.embedding == built.tok_emb.weight.numel()
    tokens = counts.count_tokens(cfg, gpt_cfg, params)
    assert tokens.flops_per_token == flops_per_token(gpt_cfg, cfg.data.context_length)
    if model == "deep_narrow":
        assert params.total == 35_763_840


def test_tokens_arithmetic(tmp_path):
    cfg = compose_train(
        tmp_path,
        ["data.batch_size=3", "model.context_length=64", "trainer.accumulate_grad_batches=5"]
        + ["trainer.max_steps=7"],
    )
    gpt_cfg = counts.model_config(cfg, 300)
    params = counts.count_params(gpt_cfg)
    tokens = counts.count_tokens(cfg, gpt_cfg, params)
    assert tokens.per_step == 3 * 64 * 5
    assert tokens.total == 3 * 64 * 5 * 7
    assert tokens.flops_per_step == tokens.flops_per_token * 3 * 64 * 5
    assert tokens.tokens_per_param == tokens.total / params.total


def test_gpt2_vocab_before_prepare(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=owt_deep_narrow"])
    assert counts.resolve_vocab(cfg)[0] == 50257


def test_refuses_when_memory_is_too_small(monkeypatch):
    monkeypatch.setattr("parrot_lm.planning.probe.device_memory", lambda device: 1024**2)
    proc = run_main(main, ["model=tiny", "trainer.accelerator=cpu", "probe=false"])
    assert_user_error(proc, "lower data.batch_size")
    assert proc.stderr.count("\n") == 1


def test_plan_prints_counts_without_probe():
    proc = run_main(main, ["model=tiny", "trainer.accelerator=cpu", "probe=false"])
    assert proc.returncode == 0, proc.stderr
    assert "Parameters: 1,066,112 total" in proc.stdout
    assert "Probe" not in proc.stdout


def test_probe_matches_a_real_run(tmp_path):
    """The probe's tokens/s within 20% of what training logs on the same config."""
    from tests.helpers.training import fit

    overrides = [
        *TINY_MODEL,
        *TINY_DATA,
        "trainer.accelerator=cpu",
        "trainer.max_steps=20",
        "trainer.log_every_n_steps=5",
        "trainer.enable_progress_bar=false",
        "sample.max_new_tokens=0",
        "logger=csv",
        "callbacks=none",
        "val_every_n_steps=1000",
    ]
    fit(tmp_path, *overrides)
    import csv

    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    rates = [float(r["train/tokens_per_sec"]) for r in rows if r.get("train/tokens_per_sec")]
    cfg = compose_train(tmp_path, overrides)
    gpt_cfg = counts.model_config(cfg, counts.resolve_vocab(cfg)[0])
    from parrot_lm.planning.probe import run_probe

    probe = run_probe(cfg, gpt_cfg, flops_per_token(gpt_cfg), steps=20, warmup=2)
    rates = rates[1:] or rates  # the first window holds the warm-up
    ratio = probe.tokens_per_s / (sum(rates) / len(rates))
    print(f"probe/run tokens/s ratio {ratio:.3f}")
    assert 0.8 <= ratio <= 1.2


def test_probe_key_is_checked():
    with pytest.raises(Exception, match="not true or false"):
        cli.split_plan_args(["probe=maybe"])
