"""Lightning strategies that need Python objects a YAML config cannot spell (module classes)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import FSDPStrategy

from parrot_lm.model.gpt import Block


def fsdp(activation_checkpointing: bool = False, **kwargs: Any) -> FSDPStrategy:
    """FSDP sharding each transformer block (and optionally recomputing its activations).

    state_dict_type stays "full": checkpoints remain one file that loads with
    torch.load(weights_only=True) and resumes under any strategy.
    """
    return FSDPStrategy(
        auto_wrap_policy={Block},
        activation_checkpointing_policy={Block} if activation_checkpointing else None,
        state_dict_type="full",
        **kwargs,
    )
