"""Every named experiment trains a few steps when its corpus and model are shrunk: one
`python train.py -m 'experiment=glob(*)'` run, as a user types it."""

from __future__ import annotations

import math
import re

import torch
from omegaconf import OmegaConf

from tests.helpers import train_cli
from tests.helpers.experiments import (
    EXPERIMENTS,
    SMOKE_STEPS,
    compose_experiment,
    smoke_overrides,
)

# Scheduling only (tests/conftest.py hands the longest files out first): one sweep of a dozen
# shrunk jobs.
SCHEDULE_SECONDS = 30


def last_val_loss(log: str) -> float:
    # The shrunk jobs limit their validation batches: logged as val/loss_partial.
    found = re.findall(r"val/loss(?:_partial)? ([-+\w.]+)", log)
    assert found, log[-2000:]
    return float(found[-1])


def test_every_experiment_trains_shrunk(tmp_path):
    sweep_dir = tmp_path / "sweep"
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # nothing may touch the hub
    proc = train_cli(
        "experiment=glob(*)",
        *smoke_overrides(tmp_path),
        sweep_dir=sweep_dir,
        multirun=True,
        jobs=len(EXPERIMENTS),
        env=offline,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    job_dirs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(job_dirs) == len(EXPERIMENTS)
    ran = {}
    for job in job_dirs:
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        name = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
        ran[name] = job
        ckpt = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == SMOKE_STEPS, name
        assert math.isfinite(last_val_loss((job / "train.log").read_text())), name
        # The job ran its experiment (shrunk), not the defaults.
        want = compose_experiment(tmp_path, name, *smoke_overrides(tmp_path))
        run_cfg = OmegaConf.load(job / "run_config.yaml")
        assert run_cfg.model == want.model, name
        assert (run_cfg.optim.lr, run_cfg.optim.warmup_steps) == (
            want.optim.lr,
            want.optim.warmup_steps,
        ), name
    assert sorted(ran) == EXPERIMENTS
    corpora = [p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")]
    assert corpora == ["stories"]  # one corpus, prepared by the first job, reused by the others
