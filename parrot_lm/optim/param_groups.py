"""Weight decay only where it regularises: matrices (>= 2-D), never norms, biases or gains."""

from __future__ import annotations

import torch.nn as nn


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW param groups; tied tensors appear once (named_parameters dedups them)."""
    return split_decay([p for _, p in model.named_parameters() if p.requires_grad], weight_decay)


def split_decay(params: list[nn.Parameter], weight_decay: float) -> list[dict]:
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
