"""Weight decay only where it regularises: matrices (>= 2-D), never norms, biases or gains."""

from __future__ import annotations

import torch.nn as nn


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW param groups; tied tensors appear once (named_parameters dedups them)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
