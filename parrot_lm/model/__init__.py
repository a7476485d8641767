"""Plain-torch model code: no Lightning or Hydra imports here."""

from parrot_lm.model.config import GPTConfig
from parrot_lm.model.gpt import GPT

__all__ = ["GPT", "GPTConfig"]
