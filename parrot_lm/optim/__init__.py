"""Optimizers and schedules built from the `optim` config group."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

from parrot_lm.core.errors import ConfigError
from parrot_lm.optim.muon import MuonWithAdamW, muon_params
from parrot_lm.optim.param_groups import decay_groups, split_decay
from parrot_lm.optim.schedules import warmup_cosine

__all__ = ["OPTIMIZERS", "build_optimizer", "build_scheduler", "decay_groups", "warmup_cosine"]

OPTIMIZERS = ("adamw", "muon")  # optim.name


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW (`optim=adamw`), or Muon on the blocks' matrices with AdamW on the rest
    (`optim=muon`)."""
    name = cfg.get("name", "adamw")
    if name == "adamw":
        return _adamw(decay_groups(model, float(cfg["weight_decay"])), cfg)
    if name == "muon":
        hidden, rest = muon_params(model)
        muon = torch.optim.Muon(
            hidden,
            lr=float(cfg["muon_lr"]),
            weight_decay=float(cfg["muon_weight_decay"]),
            momentum=float(cfg["muon_momentum"]),
            nesterov=bool(cfg["muon_nesterov"]),
            ns_steps=int(cfg["muon_ns_steps"]),
        )
        return MuonWithAdamW(muon, _adamw(split_decay(rest, float(cfg["weight_decay"])), cfg))
    raise ConfigError(f"Unknown optimizer {name!r}; expected 'adamw' or 'muon'.")


def _adamw(groups: list[dict], cfg: dict[str, Any]) -> torch.optim.AdamW:
    """fused: the config's choice; null = fused when every parameter is on the CPU or a CUDA
    device (one kernel per parameter instead of a dozen elementwise passes over it: faster on
    both, README "Speed switches"), torch's default elsewhere."""
    fused = cfg.get("fused")
    if fused is None:
        params = [p for g in groups for p in g["params"]]
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params) or None
    kwargs = {} if fused is None else {"fused": bool(fused)}
    return torch.optim.AdamW(
        groups, lr=float(cfg["lr"]), betas=tuple(cfg["betas"]), eps=float(cfg["eps"]), **kwargs
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
