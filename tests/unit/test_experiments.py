"""Named recipes in conf/experiment: each composes, validates and builds; each holds the values
its recipe names; the sweep experiments expand to their jobs; and every experiment trains a few
steps when its corpus and model are shrunk (one `-m 'experiment=glob(*)'` run:
tests/e2e/test_experiments_train.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from parrot_lm.config.schema import validate_config
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.training.run import instantiate_group
from tests.helpers import CONF_DIR
from tests.helpers.experiments import EXPERIMENTS, compose_experiment, smoke_overrides

GPT2_VOCAB = 50257


def data_vocab(data) -> int:
    """The vocabulary the data config will produce (what `model.vocab_size: null` becomes)."""
    kind = data.tokenizer.kind
    if kind == "gpt2":
        return GPT2_VOCAB
    if kind == "bpe":
        return data.tokenizer.vocab_size
    if kind == "char":  # at most max_chars characters + unk + EOT
        return data.tokenizer.max_chars + 2
    if kind == "byte":
        return 257
    raise AssertionError(f"unknown tokenizer kind {kind!r}")


def build_on_meta(cfg) -> GPT:
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["vocab_size"] = model_cfg["vocab_size"] or data_vocab(cfg.data)
    with torch.device("meta"):  # shapes only: no memory for the 124M model
        return GPT(GPTConfig(**model_cfg))


# --- every experiment composes, validates and builds -------------------------------------------

PARAMS_WITH_GPT2_VOCAB = {"owt_deep_narrow": 35_763_840, "owt_gpt2_124m": 123_551_232}


def test_experiments_exist():
    expected = {
        "owt_deep_narrow",
        "owt_gpt2_124m",
        "tinystories_10k",
        "tinystories_10k_lr_sweep",
        "tinystories_10k_batch_sweep",
        "tinystories_8k_baseline",
        "ablation_no_norm",
        "ablation_post_norm",
        "ablation_nope",
        "c4_char",
    }
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_validates_and_builds(tmp_path, name):
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n"), "experiments override several groups"
    assert re.search(rf"python train\.py (-m )?experiment={name}\b", text), "header: how to run"

    cfg = validate_config(compose_experiment(tmp_path, name))
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.model.context_length == cfg.data.context_length
    model = build_on_meta(cfg)
    assert model.num_params() > 0
    if name in PARAMS_WITH_GPT2_VOCAB:
        assert cfg.model.vocab_size is None and data_vocab(cfg.data) == GPT2_VOCAB
        assert model.num_params() == PARAMS_WITH_GPT2_VOCAB[name]

    # The Trainer takes these arguments (on the CPU when this machine has no GPU).
    trainer_cfg = cfg.trainer
    if trainer_cfg.accelerator == "gpu" and not torch.cuda.is_available():
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"accelerator": "cpu"})
    trainer = hydra.utils.instantiate(
        trainer_cfg, callbacks=instantiate_group(cfg.callbacks), logger=False
    )
    assert trainer.max_steps == cfg.trainer.max_steps
    assert trainer.accumulate_grad_batches == cfg.trainer.accumulate_grad_batches


# --- recipe values -------------------------------------------------------------------------------

ADAMW_REFERENCE = {
    "optim.betas": [0.9, 0.95],
    "optim.weight_decay": 0.1,
    "optim.min_lr_ratio": 0.1,
    "optim.grad_clip": 1.0,
}
TINYSTORIES_10K = {
    "data.name": "tinystories",
    "data.tokenizer.kind": "bpe",
    "data.tokenizer.vocab_size": 10000,
    "data.batch_size": 128,
    "trainer.max_steps": 10000,
    "optim.lr": 1e-3,
    "trainer.precision": "bf16-mixed",
}
RECIPES = {
    "owt_deep_narrow": {
        **ADAMW_REFERENCE,
        "model.d_model": 320,
        "model.n_layers": 16,
        "model.n_heads": 8,
        "model.context_length": 1024,
        "data.name": "openwebtext",
        "data.tokenizer.kind": "gpt2",
        "trainer.accelerator": "gpu",
        "trainer.precision": "bf16-mixed",
        "optim.warmup_steps": 2000,
        "trainer.accumulate_grad_batches": 4,
        "val_every_n_steps": 500,
        "ckpt_every_n_steps": 5000,
    },
    "owt_gpt2_124m": {
        **ADAMW_REFERENCE,
        "model.d_model": 768,
        "model.n_layers": 12,
        "model.n_heads": 12,
        "model.context_length": 1024,
        "data.name": "openwebtext",
        "data.tokenizer.kind": "gpt2",
        "trainer.accelerator": "gpu",
        "trainer.precision": "bf16-mixed",
        "optim.lr": 6e-4,
        "optim.warmup_steps": 2000,
    },
    "tinystories_10k": TINYSTORIES_10K,
    "tinystories_8k_baseline": {
        **TINYSTORIES_10K,
        "data.tokenizer.vocab_size": 8192,
        "model.dropout": 0.0,
        "model.norm": "rmsnorm",
        "model.norm_position": "pre",
        "model.pos_encoding": "rope",
    },
    "c4_char": {
        "data.name": "c4",
        "data.tokenizer.kind": "char",
        "data.source.streaming": True,
        "data.source.limit": 500000,
    },
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_values(tmp_path, name):
    cfg = compose_experiment(tmp_path, name)
    got = {key: OmegaConf.select(cfg, key) for key in RECIPES[name]}
    got = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in got.items()}
    assert got == RECIPES[name]


def tokens_per_step(cfg) -> int:
    return cfg.data.batch_size * cfg.trainer.accumulate_grad_batches * cfg.model.context_length


def test_tokens_per_step_and_budgets(tmp_path):
    deep = compose_experiment(tmp_path, "owt_deep_narrow")
    assert deep.data.batch_size * deep.trainer.accumulate_grad_batches == 256  # effective batch
    assert tokens_per_step(deep) == 262_144
    gpt2 = compose_experiment(tmp_path, "owt_gpt2_124m")
    assert tokens_per_step(gpt2) == 524_288  # ~0.5M, as nanoGPT (491,520) and GPT-3 small
    assert tokens_per_step(gpt2) * gpt2.trainer.max_steps < 9.0e9  # about one pass over OWT
    char = compose_experiment(tmp_path, "c4_char")
    assert char.model.context_length in (256, 512)
    for cfg in (deep, gpt2, char):  # the warmup is a small part of the run
        assert cfg.optim.warmup_steps <= cfg.trainer.max_steps // 5


def job_container(tmp_path: Path, name: str) -> dict:
    """The job config (no hydra node) as a plain dict, interpolations kept."""
    return OmegaConf.to_container(compose_experiment(tmp_path, name))


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("ablation_no_norm", "norm", "none"),
        ("ablation_post_norm", "norm_position", "post"),
        ("ablation_nope", "pos_encoding", "none"),
    ],
)
def test_ablation_is_the_baseline_with_one_switch(tmp_path, name, key, value):
    baseline = job_container(tmp_path, "tinystories_8k_baseline")
    ablation = job_container(tmp_path, name)
    assert ablation["model"][key] == value != baseline["model"][key]
    ablation["model"][key] = baseline["model"][key]
    assert ablation == baseline
    validate_config(compose_experiment(tmp_path, name))  # the switch is a known model key


@pytest.mark.parametrize("name", ["tinystories_10k_lr_sweep", "tinystories_10k_batch_sweep"])
def test_sweep_job_config_is_tinystories_10k(tmp_path, name):
    """Outside their own `-m` run (a single run, or a job of another sweep) they are the base."""
    assert job_container(tmp_path, name) == job_container(tmp_path, "tinystories_10k")


# --- sweeps expand to their jobs -----------------------------------------------------------------


@pytest.fixture
def multirun(tmp_path, monkeypatch):
    """Run Hydra's real multirun (BasicSweeper + BasicLauncher, train.yaml) in this process with
    a task function that only records each job's overrides and config: no training."""

    def go(*args: str) -> list[tuple[list[str], object]]:
        jobs = []

        def task(cfg):
            jobs.append((list(HydraConfig.get().overrides.task), cfg))

        monkeypatch.setattr(
            sys,
            "argv",
            [
                "train.py",
                "-m",
                *args,
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
                "hydra/job_logging=none",  # leave logging in this process as it is
                "hydra/hydra_logging=none",
            ],
        )
        saved = HydraConfig.instance().cfg
        try:
            main = hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
            main(task)()
        finally:  # leave no Hydra state behind for other tests in this process
            HydraConfig.instance().cfg = saved
            GlobalHydra.instance().clear()
        return jobs

    return go


def test_lr_sweep_expands_to_four_jobs(multirun):
    jobs = multirun("experiment=tinystories_10k_lr_sweep")
    assert [cfg.optim.lr for _, cfg in jobs] == [1e-2, 1e-3, 5e-4, 2e-4]
    for overrides, cfg in jobs:
        assert "experiment=tinystories_10k_lr_sweep" in overrides
        assert cfg.data.tokenizer.vocab_size == 10000 and cfg.data.batch_size == 128


def test_batch_sweep_expands_to_two_jobs(multirun):
    jobs = multirun("experiment=tinystories_10k_batch_sweep")
    assert [cfg.data.batch_size for _, cfg in jobs] == [128, 256]
    assert {cfg.optim.lr for _, cfg in jobs} == {1e-3}


def test_muon_vs_adamw_expands_to_one_job_per_optimizer(multirun):
    jobs = multirun("experiment=muon_vs_adamw")
    assert [cfg.optim.name for _, cfg in jobs] == ["adamw", "muon"]
    assert len({(cfg.optim.lr, cfg.trainer.max_steps, cfg.seed) for _, cfg in jobs}) == 1


def test_command_line_sweep_replaces_the_experiments(multirun):
    jobs = multirun("experiment=tinystories_10k_lr_sweep", "optim.lr=3e-3,1e-3")
    assert [cfg.optim.lr for _, cfg in jobs] == [3e-3, 1e-3]


def test_glob_sweep_runs_each_experiment_once(multirun):
    """Sweep params are read from the config composed before the sweep, which has no experiment
    when the experiment itself is swept: the sweep experiments run once, as tinystories_10k."""
    jobs = multirun("experiment=glob(*)")
    names = [o.split("=", 1)[1] for overrides, _ in jobs for o in overrides if "experiment=" in o]
    assert names == EXPERIMENTS
    by_name = dict(zip(names, (cfg for _, cfg in jobs), strict=True))
    assert by_name["tinystories_10k_lr_sweep"].optim.lr == 1e-3
    assert by_name["tinystories_10k_batch_sweep"].data.batch_size == 128


# --- smoke: every experiment trains a few steps, shrunk, in one multirun -------------------------


def test_command_line_data_replaces_the_experiments(tmp_path):
    """`data=stories` on the command line wins over an experiment's `override /data: ...`; the
    shrunk jobs then all see one identical data config, so they share one prepared corpus."""
    datas = []
    for name in EXPERIMENTS:
        cfg = compose_experiment(tmp_path, name, *smoke_overrides(tmp_path))
        assert cfg.data.name == "stories" and cfg.trainer.accelerator == "cpu", name
        datas.append(OmegaConf.to_container(cfg.data, resolve=True))
    assert all(d == datas[0] for d in datas), "an experiment changes the stories data config"
