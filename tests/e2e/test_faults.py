"""Faults around checkpoints: a process killed while writing one, a missing run dir, a foreign
file, a non-finite loss: each ends in one sentence and a non-zero exit (or a clean resume), and
no file that existed before is lost."""

from __future__ import annotations

import signal

import pytest
import torch

from tests.helpers import FAULTS, ROOT, assert_user_error, output, run_cli, train_cli

# Scheduling only (tests/conftest.py hands the longest files out first):
# two kill-and-resume pairs and three refusals.
SCHEDULE_SECONDS = 75


@pytest.mark.parametrize("die_on_save, resumed_step", [(3, 5), (4, 10)])
def test_kill_while_writing_a_checkpoint(tmp_path, die_on_save, resumed_step):
    # Saves go step5, last(5), step10, last(10): die half-way through the 3rd or the 4th
    # (best.ckpt's saves, after validations, are left out of this count).
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    proc = train_cli(
        *FAULTS,
        "trainer.max_steps=20",
        "callbacks.best_checkpoint=null",
        "checkpoint_io._target_=tests.helpers.callbacks.DyingCheckpointIO",
        f"+checkpoint_io.die_on_save={die_on_save}",
        run_dir=run_dir,
        data_dir=data_dir,
    )
    assert proc.returncode == -signal.SIGKILL
    ckpt_dir = run_dir / "checkpoints"
    assert list(ckpt_dir.glob(".*.tmp-*")), "the half-written file should be a temporary"
    last = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5

    # The resumed run keeps its saved config (the dying IO); disarm it.
    proc = train_cli(
        *FAULTS,
        "trainer.max_steps=20",
        "+checkpoint_io.die_on_save=1000",
        "callbacks.best_checkpoint=null",
        resume=run_dir,
        data_dir=data_dir,
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    assert f"(step {resumed_step})" in output(proc)
    assert not list(ckpt_dir.glob(".*.tmp-*"))
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["global_step"] == 20


def test_missing_run_dir(tmp_path):
    proc = run_cli(["train.py", f"resume={tmp_path / 'nope'}"], cwd=ROOT)
    assert_user_error(proc, "does not exist")
    assert not (tmp_path / "nope").exists()


def test_foreign_file_as_checkpoint(tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    proc = train_cli(
        *FAULTS, f"ckpt_path={foreign}", run_dir=tmp_path / "run", data_dir=tmp_path / "data"
    )
    assert_user_error(proc, "is not a ParrotLM training checkpoint")


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    proc = train_cli(
        *FAULTS,
        "trainer.max_steps=20",
        "+callbacks.poison._target_=tests.helpers.callbacks.PoisonWeightsAt",
        "+callbacks.poison.step=7",
        run_dir=tmp_path / "run",
        data_dir=tmp_path / "data",
    )
    assert_user_error(proc, "The training loss became nan at step 7")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
