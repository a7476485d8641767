"""DDP on CPU (`trainer=ddp_sim`) when something goes wrong: a non-finite loss on one rank is
skipped by every rank (as one process skips the whole batch) or stops every rank with one
sentence, and a local multirun of DDP is refused. Training itself: tests/e2e/test_distributed.py.
"""

from __future__ import annotations

import torch

from tests.helpers import DDP, DDP_GLOBAL_BATCH, DDP_STEPS, assert_user_error, train_cli
from tests.helpers.callbacks import batch_recorder, poison_at

# Scheduling only (tests/conftest.py hands the longest files out first): three two-rank
# launches, one spawned sweep job and one process.
SCHEDULE_SECONDS = 110
GLOBAL_BATCH, STEPS = DDP_GLOBAL_BATCH, DDP_STEPS


def test_a_local_multirun_of_ddp_is_refused_with_a_sentence(small_data_dir, tmp_path):
    proc = train_cli(
        "trainer=ddp_sim",
        "optim.lr=1e-3,3e-4",
        *DDP,
        data_dir=small_data_dir,
        sweep_dir=tmp_path / "sweep",
        multirun=True,
    )
    assert_user_error(proc, "cannot do; sweep with hydra/launcher=slurm")
    assert not list((tmp_path / "sweep").glob("*/checkpoints/*.ckpt"))


def test_a_local_multirun_of_ddp_runs_with_spawned_ranks(small_data_dir, tmp_path):
    """The README's way round the refusal above: Lightning's spawn launcher hands the trained
    weights back to the sweep's process through a file that is not a training checkpoint."""
    proc = train_cli(
        "trainer=ddp_sim",
        "+trainer.strategy.start_method=spawn",
        "optim.lr=1e-3",
        *DDP,
        data_dir=small_data_dir,
        sweep_dir=tmp_path / "sweep",
        multirun=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == STEPS
    assert "Final val/loss" in proc.stderr + proc.stdout


def test_a_nonfinite_loss_on_one_rank_is_skipped_by_every_rank(small_data_dir, tmp_path):
    """nonfinite_loss=skip under DDP: a NaN on rank 1 only makes both ranks skip that step,
    exactly as one process skips the whole global batch (no update, not even momentum)."""
    skip = [*DDP, "nonfinite_loss=skip", f"paths.log_dir={tmp_path}"]
    single = train_cli(
        *skip,
        *batch_recorder(tmp_path / "single"),
        *poison_at(3, restore=True),
        "trainer=cpu",
        f"data.batch_size={GLOBAL_BATCH}",
        run_dir=tmp_path / "single_run",
        data_dir=small_data_dir,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = train_cli(
        *skip,
        *batch_recorder(tmp_path / "ddp"),
        *poison_at(3, restore=True, rank=1),
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        run_dir=tmp_path / "ddp_run",
        data_dir=small_data_dir,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    out = ddp.stdout + ddp.stderr
    assert "The training loss became nan at step 3" in out  # rank 1
    assert "became non-finite on another rank at step 3" in out  # rank 0
    a, b = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
        for run in ("single_run", "ddp_run")
    )
    assert a["global_step"] == b["global_step"] == STEPS
    for name, weight in a["state_dict"].items():
        assert torch.isfinite(b["state_dict"][name]).all()
        torch.testing.assert_close(b["state_dict"][name], weight, atol=1e-5, rtol=0)


def test_a_nonfinite_loss_on_one_rank_stops_every_rank_with_a_sentence(small_data_dir, tmp_path):
    proc = train_cli(
        *DDP,
        *batch_recorder(tmp_path / "ddp"),
        f"paths.log_dir={tmp_path}",
        *poison_at(3, restore=True, rank=1),
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        data_dir=small_data_dir,
    )
    assert_user_error(proc, "The training loss became nan at step 3")
    assert "became non-finite on another rank at step 3" in proc.stderr  # rank 0 stops too
    assert "Connection closed" not in proc.stderr  # not a crash of the other rank
