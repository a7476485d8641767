"""The training stage: composed config in, trained checkpoint, TensorBoard run and sample out."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from parrot_lm.config import validate_config
from parrot_lm.data.datamodule import TokenDataModule
from parrot_lm.errors import ConfigError, DataError
from parrot_lm.hardware import warn_if_slow_precision
from parrot_lm.lit_module import LitLM
from parrot_lm.model import GPTConfig
from parrot_lm.sampling import sample_text

log = logging.getLogger(__name__)


def resolve_model_config(model: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Fill the vocab from the data's tokenizer unless set; refuse a vocab the data overflows."""
    model = dict(model)
    if model.get("vocab_size") is None:
        model["vocab_size"] = int(meta["vocab_size"])
    max_id = max(split["max_token_id"] for split in meta["splits"].values())
    if model["vocab_size"] <= max_id:
        raise DataError(
            f"model.vocab_size is {model['vocab_size']} but the data contains token id {max_id}; "
            f"set model.vocab_size to at least {max_id + 1} (or null to use the data's)."
        )
    try:
        return GPTConfig(**model).to_dict()
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


def build_datamodule(data: DictConfig) -> TokenDataModule:
    kwargs = OmegaConf.to_container(data, resolve=True)
    kwargs.pop("name", None)
    return TokenDataModule(**kwargs)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Callbacks/loggers: every entry with a `_target_`, in config order."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if "_target_" in node]


def run(cfg: DictConfig) -> float | None:
    """Train as configured; returns the final val loss (the metric sweeps optimise)."""
    # Lightning 2.6 on torch 2.13 warns about its own internals on every run; not actionable.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    cfg = validate_config(cfg)
    if cfg.trainer.max_steps <= 0 and not cfg.trainer.fast_dev_run:
        raise ConfigError(
            "trainer.max_steps must be positive: the learning-rate schedule is defined in steps."
        )
    L.seed_everything(cfg.seed, workers=True)
    warn_if_slow_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))

    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    meta = datamodule.meta
    model_cfg = resolve_model_config(OmegaConf.to_container(cfg.model, resolve=True), meta)
    optim_cfg = OmegaConf.to_container(cfg.optim, resolve=True)
    lit = LitLM(model=model_cfg, optim=optim_cfg, total_steps=cfg.trainer.max_steps)
    log.info(
        "Model: %s parameters (d_model %d, %d layers, %d heads, vocab %s, context %d)",
        f"{lit.model.num_params():,}",
        model_cfg["d_model"],
        model_cfg["n_layers"],
        model_cfg["n_heads"],
        f"{model_cfg['vocab_size']:,}",
        model_cfg["context_length"],
    )
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    try:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False
        )
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"Cannot build the Lightning Trainer from `trainer`: {cause}") from e
    log.info("Run dir: %s", Path(trainer.default_root_dir).resolve())
    trainer.fit(lit, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    val_loss = trainer.callback_metrics.get("val/loss")
    if val_loss is not None:
        log.info("Final val/loss %.4f (ppl %.2f)", float(val_loss), math.exp(float(val_loss)))
    if trainer.is_global_zero and cfg.sample.max_new_tokens > 0:
        text = sample_text(
            lit.model,
            datamodule.load_tokenizer(),
            cfg.sample.prompt,
            cfg.sample.max_new_tokens,
            cfg.sample.temperature,
            cfg.sample.top_k,
            seed=cfg.seed,
        )
        print(f"\n--- sample ---\n{text}\n--------------\n", flush=True)
    return float(val_loss) if val_loss is not None else None


__all__ = ["run", "resolve_model_config"]
