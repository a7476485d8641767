"""Muon for the hidden weight matrices, AdamW for everything else, as one optimizer.

Muon orthogonalises each 2-D update (Newton-Schulz), which suits the attention and MLP
matrices; embeddings, the output head and norm gains keep AdamW (Keller Jordan's recipe).
Lightning and the LR scheduler see a single optimizer whose param_groups are both
optimizers' groups, so the warmup/cosine schedule scales both.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import torch
import torch.nn as nn


def muon_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden 2-D matrices of the transformer blocks, everything else); each tensor once."""
    hidden, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (hidden if p.dim() == 2 and name.startswith("blocks.") else rest).append(p)
    return hidden, rest


class _JointState(MutableMapping):
    """Both optimizers' per-parameter state as one mapping; a write goes to the owner's."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.muon, self.adamw = muon, adamw
        self.muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}

    def _owner(self, param: torch.Tensor) -> dict:
        return self.muon.state if id(param) in self.muon_ids else self.adamw.state

    def __getitem__(self, param: torch.Tensor) -> Any:
        return self._owner(param)[param]

    def __setitem__(self, param: torch.Tensor, value: Any) -> None:
        self._owner(param)[param] = value

    def __delitem__(self, param: torch.Tensor) -> None:
        del self._owner(param)[param]

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.muon.state
        yield from self.adamw.state

    def __len__(self) -> int:
        return len(self.muon.state) + len(self.adamw.state)


class MuonWithAdamW(torch.optim.Optimizer):
    """Steps torch.optim.Muon and torch.optim.AdamW together."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        # Optimizer.__init__ is not called: the groups and state belong to the two inner ones.
        self.muon, self.adamw = muon, adamw
        self.defaults = {}
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.muon.param_groups + self.adamw.param_groups

    @property
    def state(self) -> _JointState:
        return _JointState(self.muon, self.adamw)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])

    def __repr__(self) -> str:
        return f"MuonWithAdamW(muon={self.muon!r}, adamw={self.adamw!r})"
