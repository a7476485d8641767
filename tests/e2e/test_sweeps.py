"""Sweeps through Hydra's launchers and sweepers, run as a user types them: parallel joblib jobs,
a submitit job requeued into its own dir, an Optuna search, a diverged job inside a sweep."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import pytest
import torch
import yaml

from parrot_lm.training.launch import threads_per_job
from tests.helpers import ROOT, SWEEP, run_cli, train_cli

# Scheduling only (tests/conftest.py hands the longest files out first): four sweeps of two
# jobs each.
SCHEDULE_SECONDS = 95


@pytest.fixture
def data_dir(small_data_dir) -> Path:
    return small_data_dir


def multirun(data_dir: Path, sweep_dir: Path, *overrides: str, jobs: int = 2):
    """`python train.py -m ...` of `jobs` jobs (a requeued job counts twice)."""
    return train_cli(
        *SWEEP, *overrides, data_dir=data_dir, sweep_dir=sweep_dir, multirun=True, jobs=jobs
    )


def log_span(job_dir: Path) -> tuple[datetime, datetime]:
    stamps = re.findall(r"^\[([^\]]+)\]", (job_dir / "train.log").read_text(), re.M)
    parse = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps]
    return parse[0], parse[-1]


def final_step(job_dir: Path) -> int:
    return torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def test_joblib_runs_jobs_in_parallel_and_the_report_reads_them(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun(
        data_dir,
        sweep,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim.lr=1e-3,3e-4",
        # Long enough (~2 s of logs each) that the two jobs overlap even when a loaded machine
        # starts the second worker late: at 12 steps each job logged for only ~0.5 s.
        "trainer.max_steps=400",
        "val_every_n_steps=200",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == ["0", "1"]
    assert [final_step(j) for j in jobs] == [400, 400]
    overrides = [yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()) for j in jobs]
    lrs = [
        float(next(o for o in job if o.startswith("optim.lr=")).split("=")[1]) for job in overrides
    ]
    assert lrs == [1e-3, 3e-4]
    # Both jobs were running at the same time, each on its share of the CPU threads.
    (start0, end0), (start1, end1) = log_span(jobs[0]), log_span(jobs[1])
    assert start1 < end0 and start0 < end1, "jobs ran one after the other"
    threads = threads_per_job(2)
    for job in jobs:
        assert f"(2 at once): {threads} CPU threads" in (job / "train.log").read_text()

    report = run_cli(["scripts/report.py", str(sweep)], cwd=ROOT)
    assert report.returncode == 0, report.stderr[-3000:]
    table = (sweep / "report.md").read_text()
    assert "optim.lr=0.001" in table or "optim.lr=1e-3" in table
    assert (sweep / "report.csv").is_file()
    assert (sweep / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_submitit_requeues_a_timed_out_job_into_its_own_dir_and_it_resumes(data_dir, tmp_path):
    """SIGUSR2 is what SLURM sends before the time limit; submitit's local executor runs the same
    requeue path as on a cluster."""
    sweep = tmp_path / "sweep"
    proc = multirun(
        data_dir,
        sweep,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "+hydra.launcher.max_num_timeout=3",
        "logger=none",
        "trainer.max_steps=8",
        "val_every_n_steps=4",
        "+callbacks.kill._target_=tests.helpers.callbacks.SignalAt",
        "+callbacks.kill.step=3",
        "+callbacks.kill.signal_name=SIGUSR2",
        f"+callbacks.kill.once_file={tmp_path / 'signalled'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = sweep / "0"
    log = (job / "train.log").read_text()
    assert "Saved" in log and "at step 4; stopping" in log
    assert "Requeued job" in log
    assert "Resuming from" in log and "(step 4)" in log
    assert final_step(job) == 8
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_optuna_search_minimises_the_val_loss_each_job_returns(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun(
        data_dir,
        sweep,
        "hparams_search=lr_optuna",
        "hydra.sweeper.n_trials=2",
        "logger=none",
        "trainer.max_steps=4",
        "val_every_n_steps=4",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    finals = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        finals.append(
            float(re.findall(r"Final val/loss ([\d.]+)", (job / "train.log").read_text())[-1])
        )
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        lr = float(next(o for o in overrides if o.startswith("optim.lr=")).split("=")[1])
        assert 1e-4 <= lr <= 1e-2
    assert len(finals) == 2
    assert math.isclose(result["best_value"], min(finals), abs_tol=1e-4)
    assert set(result["best_params"]) == {"optim.lr", "optim.warmup_steps"}


def test_a_diverged_job_scores_inf_and_the_sweep_goes_on(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun(
        data_dir,
        sweep,
        "logger=none",
        "trainer.max_steps=4",
        "val_every_n_steps=4",
        "+callbacks.poison._target_=tests.helpers.callbacks.PoisonWeightsAt",
        "+callbacks.poison.step=2,1000",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scores +inf; the sweep goes on" in (sweep / "0" / "train.log").read_text()
    assert final_step(sweep / "1") == 4
