"""nonfinite_loss=skip in this process: the poisoned batch is skipped with a warning, the run
goes on to its last step, and its weights stay finite (stopping instead, as the command does:
tests/e2e/test_faults.py)."""

from __future__ import annotations

import logging

import torch

from tests.helpers import FAULTS, fit


def test_nonfinite_loss_can_be_skipped(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        fit(
            tmp_path,
            *FAULTS,
            "trainer.max_steps=12",
            "nonfinite_loss=skip",
            "+callbacks.poison._target_=tests.helpers.callbacks.PoisonWeightsAt",
            "+callbacks.poison.step=7",
            "+callbacks.poison.restore=true",
        )
    assert "skipping this batch" in caplog.text
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 12
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
