"""Exact resume after the signals a scheduler sends: SIGTERM or SIGINT save the current step and
exit (with gradient accumulation and data workers), SLURM's SIGUSR1 requeues the job into the
same dir; the resumed run matches the uninterrupted one bit for bit. SIGKILL and moved dirs:
tests/e2e/test_resume_kill.py (the references are shared: tests/helpers/resume.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from tests.helpers import RESUME, output, train_cli
from tests.helpers.callbacks import DISARM_SIGNAL, loss_recorder
from tests.helpers.records import assert_same_run, scalar_steps
from tests.helpers.resume import batches_per_epoch, reference_run, resume_run, stop_run

# Scheduling only (tests/conftest.py hands the longest files out first): a reference run and
# four signal-and-resume pairs of about 105 batches.
SCHEDULE_SECONDS = 110
ACCUMULATE = ["trainer.accumulate_grad_batches=4", "data.num_workers=2"]


def accumulated_steps(data_dir) -> int:
    """Two epochs and two steps of optimizer steps (an epoch is a whole number of them)."""
    return 2 * (batches_per_epoch(data_dir) // 4) + 2


def stop(run_dir: Path, data_dir: Path, n: int, k: int, signal_name: str):
    """Train with ACCUMULATE and send `signal_name` two micro-batches after step k."""
    return stop_run(run_dir, data_dir, n, k, signal_name, *ACCUMULATE)


def resume(run_dir: Path, data_dir: Path, n: int):
    return resume_run(run_dir, data_dir, n, *ACCUMULATE)


def test_accumulation_and_workers_resume_exactly(tmp_path_factory, small_data_dir, tmp_path):
    steps_per_epoch = batches_per_epoch(small_data_dir) // 4
    n = accumulated_steps(small_data_dir)
    k = steps_per_epoch + 1  # inside the second epoch
    reference = reference_run(tmp_path_factory, small_data_dir, n, *ACCUMULATE)
    # Validation right after every 5th optimizer step, across epoch boundaries, logged at
    # that step, and at the last step (limit_val_batches=2 of a larger split: "_partial").
    expected = sorted({0, *range(5, n + 1, 5), n})
    assert scalar_steps(reference, "val/loss_partial") == expected
    run_dir = tmp_path / "accumulate"
    proc = stop(run_dir, small_data_dir, n, k, "SIGKILL")
    assert proc.returncode == -signal.SIGKILL
    proc = resume(run_dir, small_data_dir, n)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(reference, run_dir)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_sigterm_or_sigint_saves_current_step_and_resumes_exactly(
    tmp_path_factory, small_data_dir, tmp_path, signal_name
):
    n = accumulated_steps(small_data_dir)
    reference = reference_run(tmp_path_factory, small_data_dir, n, *ACCUMULATE)
    # SIGTERM two micro-batches into step 4: the step is finished, then saved.
    run_dir = tmp_path / signal_name
    proc = stop(run_dir, small_data_dir, n, 3, signal_name)
    assert proc.returncode == 128 + getattr(signal, signal_name), proc.stderr[-3000:]
    out = output(proc)
    assert "Saved" in out and "resume with" in out
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    proc = resume(run_dir, small_data_dir, n)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(reference, run_dir)


def test_slurm_sigusr1_requeues_into_the_same_dir_and_resumes(
    tmp_path_factory, small_data_dir, tmp_path
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "$@" >> "$SCONTROL_LOG"\n')
    scontrol.chmod(0o755)
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "parrot",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SCONTROL_LOG": str(tmp_path / "scontrol"),
    }
    n = 2 * batches_per_epoch(small_data_dir) + 3
    reference = reference_run(tmp_path_factory, small_data_dir, n)
    run_dir = tmp_path / "outputs" / "runs" / "slurm-4242"
    args = [
        *RESUME,
        f"trainer.max_steps={n}",
        *loss_recorder(f"{run_dir}.losses"),
        "+callbacks.kill._target_=tests.helpers.callbacks.SignalAt",
        "+callbacks.kill.signal_name=SIGUSR1",
    ]
    where = {"root_dir": tmp_path, "data_dir": small_data_dir, "env": env}
    proc = train_cli(*args, "+callbacks.kill.step=5", **where)
    assert proc.returncode == 128 + signal.SIGUSR1, proc.stderr[-3000:]
    assert (tmp_path / "scontrol").read_text().split() == ["requeue", "4242"]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    # SLURM starts the same command again with the same job id: it resumes in the same dir.
    proc = train_cli(*args, DISARM_SIGNAL, **where)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in output(proc)
    assert_same_run(reference, run_dir)
