"""Exact resume after SIGKILL: a run killed after the checkpoint at step k and resumed matches the
uninterrupted run bit for bit (per-step loss and final weights), also when its dir was moved.
The references are trained once per session (tests/helpers/resume.py); SIGTERM, SIGINT,
SLURM's SIGUSR1 and gradient accumulation: tests/e2e/test_resume_signals.py."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.helpers import output
from tests.helpers.records import assert_same_run, scalar_steps
from tests.helpers.resume import batches_per_epoch, reference_run, resume_run, stop_run

# Scheduling only (tests/conftest.py hands the longest files out first): a reference run and
# four kill-and-resume pairs of about 105 steps.
SCHEDULE_SECONDS = 90


def kill(run_dir: Path, data_dir: Path, max_steps: int, k: int):
    """SIGKILL two batches after the checkpoint at step k."""
    return stop_run(run_dir, data_dir, max_steps, k, "SIGKILL")


@pytest.mark.parametrize("where", ["inside_epoch", "last_step_of_epoch", "before_epoch_end"])
def test_sigkill_then_resume_is_bitwise_identical(
    tmp_path_factory, small_data_dir, tmp_path, where
):
    spe = batches_per_epoch(small_data_dir)
    assert spe >= 8
    k = {"inside_epoch": spe // 2, "last_step_of_epoch": spe, "before_epoch_end": spe - 1}[where]
    n = 2 * spe + 3
    reference = reference_run(tmp_path_factory, small_data_dir, n)
    run_dir = tmp_path / where
    proc = kill(run_dir, small_data_dir, n, k)
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == k
    killed_batches = len(Path(f"{run_dir}.losses").read_text().splitlines())
    assert killed_batches == k + 2  # two batches of orphan work past the checkpoint

    proc = resume_run(run_dir, small_data_dir, n)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in output(proc)
    assert_same_run(reference, run_dir)
    # One TensorBoard run, continuous: the killed run's orphan points are purged.
    steps = scalar_steps(run_dir, "train/loss")
    assert steps == sorted(set(steps)) == scalar_steps(reference, "train/loss")


def test_a_moved_run_dir_resumes_in_its_new_place(tmp_path_factory, small_data_dir, tmp_path):
    """The saved config holds resolved paths of the old run dir (checkpoints, TensorBoard);
    a resume after `mv` writes only to the new one and still continues exactly."""
    spe = batches_per_epoch(small_data_dir)
    n = 2 * spe + 3
    reference = reference_run(tmp_path_factory, small_data_dir, n)
    old, new = tmp_path / "before_move", tmp_path / "after_move"
    proc = kill(old, small_data_dir, n, spe // 2)
    assert proc.returncode == -signal.SIGKILL
    old.rename(new)
    Path(f"{old}.losses").rename(f"{new}.losses")

    proc = resume_run(new, small_data_dir, n)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not old.exists()
    assert torch.load(new / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == n
    assert_same_run(reference, new)
    assert scalar_steps(new, "train/loss") == scalar_steps(reference, "train/loss")
