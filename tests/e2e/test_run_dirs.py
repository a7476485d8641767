"""Every run gets its own dir, whatever the timing: the run dir resolver creates the dir itself
(os.mkdir, exclusive) and takes `<time>-2`, `<time>-3`, ... when another run has the name."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from parrot_lm.runs.run_dir import (
    claim_dir,
    default_run_dir,
    default_sweep_dir,
    discard_refused_run,
)
from tests.helpers import ROOT, SMALL_CORPUS, TINY_MODEL

STAMP = "2024-01-01/12-00-00"


def test_one_name_three_claims_three_dirs(tmp_path):
    dirs = [default_run_dir(None, str(tmp_path), STAMP) for _ in range(3)]
    runs = tmp_path / "runs" / "2024-01-01"
    assert dirs == [str(runs / "12-00-00"), str(runs / "12-00-00-2"), str(runs / "12-00-00-3")]
    assert all(Path(d).is_dir() for d in dirs)


def test_a_dir_made_by_someone_else_is_not_taken(tmp_path):
    (tmp_path / "runs" / "2024-01-01" / "12-00-00").mkdir(parents=True)
    assert default_run_dir(None, str(tmp_path), STAMP).endswith("12-00-00-2")


def _claim(log_dir: str) -> str:
    return default_run_dir(None, log_dir, STAMP)


def test_concurrent_processes_never_share_a_dir(tmp_path):
    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        dirs = list(pool.map(_claim, [str(tmp_path)] * 12))
    assert len(set(dirs)) == 12
    assert sorted(p.name for p in (tmp_path / "runs" / "2024-01-01").iterdir()) == sorted(
        Path(d).name for d in dirs
    )


def test_resume_and_slurm_dirs_are_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert default_run_dir(str(tmp_path / "old"), str(tmp_path), STAMP) == str(tmp_path / "old")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert default_run_dir(None, str(tmp_path), STAMP) == f"{tmp_path}/runs/slurm-42_3"
    assert not (tmp_path / "old").exists() and not (tmp_path / "runs").exists()  # not claimed


def test_the_resolver_claims_once_per_config(tmp_path):
    """Hydra resolves hydra.run.dir once, Lightning's DDP launcher asks again: one dir."""
    cfg = OmegaConf.create(
        {
            "resume": None,
            "log_dir": str(tmp_path),
            "run": f"${{parrot_run_dir:${{resume}},${{log_dir}},{STAMP}}}",
            "sweep": f"${{parrot_sweep_dir:${{log_dir}},{STAMP}}}",
        }
    )
    assert cfg.run == cfg.run and cfg.sweep == cfg.sweep
    assert [p.name for p in (tmp_path / "runs" / "2024-01-01").iterdir()] == ["12-00-00"]
    assert [p.name for p in (tmp_path / "multiruns" / "2024-01-01").iterdir()] == ["12-00-00"]
    other = OmegaConf.create(OmegaConf.to_container(cfg))  # another run, the same second
    assert other.run.endswith("12-00-00-2")


def test_sweeps_in_the_same_second_get_their_own_dir(tmp_path):
    first, second = (default_sweep_dir(str(tmp_path), STAMP) for _ in range(2))
    assert first != second and Path(first).is_dir() and Path(second).is_dir()


def test_a_refused_start_removes_only_its_own_fresh_dir(tmp_path):
    log_dir = tmp_path / "outputs"
    fresh = Path(claim_dir(str(log_dir / "runs" / "day" / "t1")))
    (fresh / ".hydra").mkdir()
    (fresh / ".hydra" / "config.yaml").write_text("x: 1\n")
    (fresh / "train.log").write_text("log\n")
    (fresh / "run_config.yaml").write_text("x: 1\n")
    assert discard_refused_run(fresh)
    assert not log_dir.exists()  # the parents it created went with it

    trained = Path(claim_dir(str(log_dir / "runs" / "day" / "t2")))
    (trained / "checkpoints").mkdir()
    assert not discard_refused_run(trained) and trained.is_dir()  # holds training output

    given = log_dir / "runs" / "mine"  # hydra.run.dir=..., or a resumed run: not claimed here
    given.mkdir(parents=True)
    assert not discard_refused_run(given) and given.is_dir()


def refused_job(sweep: Path, job: str) -> Path:
    """A sweep job dir as a refused start leaves it: Hydra's record and log."""
    (sweep / job / ".hydra").mkdir(parents=True)
    (sweep / job / ".hydra" / "config.yaml").write_text("x: 1\n")
    (sweep / job / "train.log").write_text("")
    return sweep / job


def test_a_refused_sweep_job_removes_its_dir_and_an_otherwise_empty_sweep_dir(tmp_path):
    log_dir = tmp_path / "outputs"
    sweep = Path(default_sweep_dir(str(log_dir), STAMP))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / "0" / "checkpoints").mkdir(parents=True)  # a job that trained
    assert discard_refused_run(refused_job(sweep, "1"))
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "multirun.yaml"]

    first = Path(default_sweep_dir(str(log_dir), "2024-01-02/12-00-00"))
    (first / "multirun.yaml").write_text("hydra: {}\n")
    assert discard_refused_run(refused_job(first, "0"))  # its first job: nothing left
    assert not first.parent.exists() and sweep.is_dir()

    given = log_dir / "mine"  # hydra.sweep.dir=...: not claimed here, never touched
    given.mkdir()
    assert not discard_refused_run(refused_job(given, "0")) and (given / "0").is_dir()


@pytest.fixture
def work(tmp_path, small_data_dir) -> Path:
    (tmp_path / "data").symlink_to(small_data_dir)
    return tmp_path


def test_three_train_py_started_at_once_get_three_dirs(work):
    """Three real runs whose run dirs resolve to the same name (the start time pinned, as if
    all three started in the same second): three dirs, each with its own checkpoint and run
    config."""
    args = [
        sys.executable,
        "train.py",
        f"paths.root_dir={work}",
        f"hydra.run.dir='${{parrot_run_dir:${{resume}},${{paths.log_dir}},{STAMP}}}'",
        *TINY_MODEL,
        *SMALL_CORPUS,
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_steps=1",
        "val_every_n_steps=1",
        "trainer.limit_val_batches=1",
        "sample.max_new_tokens=0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    procs = [
        subprocess.Popen(
            [*args, f"seed={seed}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2, 3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    runs = sorted((work / "outputs" / "runs" / "2024-01-01").iterdir())
    assert [p.name for p in runs] == ["12-00-00", "12-00-00-2", "12-00-00-3"]
    seeds = set()
    for run in runs:
        assert (run / "checkpoints" / "last.ckpt").is_file()
        saved = OmegaConf.load(run / "run_config.yaml")
        assert saved.paths.output_dir == str(run)
        seeds.add(saved.seed)
    assert seeds == {1, 2, 3}  # each dir holds its own run, none replaced another's
