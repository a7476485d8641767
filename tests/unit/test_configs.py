"""Every option of every config group composes, validates and instantiates."""

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from parrot_lm.config.schema import validate_config
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.training.run import build_datamodule, instantiate_group
from tests.helpers import CONF_DIR, compose_train

GROUPS = [
    "model",
    "optim",
    "data",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "experiment",
    "hparams_search",
    "debug",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


CASES = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_has_options():
    assert all(options(g) for g in GROUPS if g not in ("experiment",))


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_instantiates(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "prepared":
        overrides.append(f"data.data_dir={tmp_path}")
    gpu_only = group == "trainer" and option in ("gpu", "ddp", "fsdp")
    if gpu_only and not torch.cuda.is_available():
        # Everything but the device itself (FSDP's strategy object is tested in test_sweeps).
        overrides += ["trainer.accelerator=cpu", "trainer.devices=1"]
        if option == "fsdp":
            overrides.append("trainer.strategy=auto")
    cfg = validate_config(compose_train(tmp_path, overrides))
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():  # GPU recipes
        cfg.trainer.accelerator = "cpu"

    model_cfg = OmegaConf.to_container(cfg.model)
    model_cfg["vocab_size"] = model_cfg["vocab_size"] or 50257
    with torch.device("meta"):  # shape only: no memory for the 124M model
        model = GPT(GPTConfig(**model_cfg))
    assert model.num_params() > 0
    callbacks = instantiate_group(cfg.callbacks)
    loggers = instantiate_group(cfg.logger)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    assert trainer.max_steps == cfg.trainer.max_steps or cfg.trainer.fast_dev_run
    dm = build_datamodule(cfg.data)
    assert dm.context_length == cfg.model.context_length
    assert Path(cfg.paths.output_dir) == tmp_path / "run"


def test_deep_narrow_and_gpt2_small_sizes(tmp_path):
    sizes = {}
    for name in ("deep_narrow", "gpt2_small"):
        cfg = compose_train(tmp_path, [f"model={name}", "model.vocab_size=50257"])
        with torch.device("meta"):
            sizes[name] = GPT(GPTConfig(**OmegaConf.to_container(cfg.model))).num_params()
    assert sizes["deep_narrow"] == 35_763_840
    assert 120e6 < sizes["gpt2_small"] < 128e6
