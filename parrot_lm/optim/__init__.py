"""Optimizers and schedules built from the `optim` config group."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

from parrot_lm.errors import ConfigError
from parrot_lm.optim.param_groups import decay_groups
from parrot_lm.optim.schedules import warmup_cosine

__all__ = ["build_optimizer", "build_scheduler", "decay_groups", "warmup_cosine"]


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    name = cfg.get("name", "adamw")
    if name != "adamw":
        raise ConfigError(f"Unknown optimizer {name!r}; this version knows 'adamw'.")
    kwargs = {}
    if cfg.get("fused") is not None:
        kwargs["fused"] = bool(cfg["fused"])
    return torch.optim.AdamW(
        decay_groups(model, float(cfg["weight_decay"])),
        lr=float(cfg["lr"]),
        betas=tuple(cfg["betas"]),
        eps=float(cfg["eps"]),
        **kwargs,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: dict[str, Any], total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    lr_lambda = functools.partial(
        warmup_cosine,
        warmup_steps=int(cfg["warmup_steps"]),
        total_steps=int(total_steps),
        min_lr_ratio=float(cfg["min_lr_ratio"]),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
