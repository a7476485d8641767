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


def test_plan_prints_counts_without_probe(tmp_path):
    # Unprepared data (the configured vocabulary), whatever `make train` left in data/.
    unprepared = f"data.data_dir={tmp_path / 'unprepared'}"
    proc = run_main(main, ["model=tiny", "trainer.accelerator=cpu", "probe=false", unprepared])
    assert proc.returncode == 0, proc.stderr
    assert "Parameters: 1,066,112 total" in proc.stdout
    assert "Probe" not in proc.stdout


def test_probe_trains_the_configured_steps_through_lightning(tmp_path):
    """The probe's figures are consistent with each other and with the config; how close its
    tokens/s comes to a real run's is a measured ratio in `make bench` (plan.py probe /
    ParrotLM), not a timed assertion here."""
    from parrot_lm.planning.probe import run_probe

    overrides = [*TINY_MODEL, *TINY_DATA, "trainer.accelerator=cpu"]
    cfg = compose_train(tmp_path, overrides)
    gpt_cfg = counts.model_config(cfg, counts.resolve_vocab(cfg)[0])
    probe = run_probe(cfg, gpt_cfg, flops_per_token(gpt_cfg), steps=3, warmup=1)
    tokens_per_step = cfg.data.batch_size * cfg.data.context_length
    assert probe.tokens_per_s * probe.step_s == pytest.approx(tokens_per_step)
    assert probe.mfu == pytest.approx(
        probe.tokens_per_s * flops_per_token(gpt_cfg) / probe.peak.flops
    )
    assert list(tmp_path.iterdir()) == [] or not (tmp_path / "run").exists()  # nothing written


def test_probe_key_is_checked():
    with pytest.raises(Exception, match="not true or false"):
        cli.split_plan_args(["probe=maybe"])


def local_corpus(tmp_path, name: str) -> list[str]:
    """data=local overrides for a small text file under tmp_path, prepared into tmp_path/local."""
    text = tmp_path / f"{name}.txt"
    text.write_text("\n\n".join(f"{name} story {i}: the cat sat on the mat." for i in range(40)))
    return [
        "data=local",
        f"data.source.path={text}",
        "data.source.sample_by=paragraph",
        "data.tokenizer.kind=byte",
        f"data.data_dir={tmp_path / 'local'}",
        "trainer.accelerator=cpu",
    ]


def test_plan_refuses_a_corpus_prepared_from_another_source_as_training_does(tmp_path):
    """A data dir prepared from one source, planned with another: training's data module
    refuses the run, so the plan refuses it with the same sentence (and touches nothing),
    instead of describing the old corpus. The same source is planned from the corpus."""
    from parrot_lm.config.schema import validate_config
    from parrot_lm.core.errors import DataError
    from parrot_lm.training.run import build_datamodule
    from tests.helpers.cli import tree_sha256

    first = local_corpus(tmp_path, "first")
    build_datamodule(validate_config(compose_train(tmp_path, first)).data).prepare_data()
    proc = run_main(main, [*first, "probe=false"])
    assert proc.returncode == 0, proc.stderr
    assert f"vocab 257 (prepared data ({tmp_path / 'local' / 'meta.json'}))" in proc.stdout

    other = local_corpus(tmp_path, "other")
    with pytest.raises(DataError) as training:  # what train.py would say, before any data
        build_datamodule(validate_config(compose_train(tmp_path, other)).data).prepare_data()
    before = tree_sha256(tmp_path / "local")
    for extra in ([], ["model.vocab_size=257"]):  # a set vocab does not skip the check
        proc = run_main(main, [*other, *extra, "probe=false"])
        assert_user_error(proc, "already holds a corpus prepared with another config")
        assert proc.stderr == f"error: {training.value}\n"
        assert proc.stdout == ""
    assert tree_sha256(tmp_path / "local") == before
