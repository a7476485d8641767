"""The one way tests train: `train_cli` runs `train.py` in a subprocess (signals, DDP launchers,
sweeps, the command line's own behaviour); `fit` runs the same composed config in this process
(`run(cfg)`) where a subprocess is not the point. Both take plain Hydra overrides."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.helpers.cli import run_cli
from tests.helpers.config import ROOT, compose_train

# When a run's overrides do not say how long it trains (a resume keeps its saved max_steps).
UNKNOWN_STEPS = 100


def train_args(
    *overrides: str,
    run_dir: Path | None = None,
    resume: Path | None = None,
    data_dir: Path | None = None,
    root_dir: Path | None = None,
    sweep_dir: Path | None = None,
    multirun: bool = False,
) -> list[str]:
    """The command line after `python`: where the run goes (a fresh `run_dir`, or `resume`,
    or `root_dir` for Hydra's dated dirs), where its data is, then the overrides."""
    args = ["train.py", *(["-m"] if multirun else [])]
    if resume is not None:
        args.append(f"resume={resume}")
    elif run_dir is not None:
        args.append(f"hydra.run.dir={run_dir}")
    if sweep_dir is not None:
        args.append(f"hydra.sweep.dir={sweep_dir}")
    if root_dir is not None:
        args.append(f"paths.root_dir={root_dir}")
    if data_dir is not None:
        args.append(f"paths.data_dir={data_dir}")
    return [*args, *overrides]


def _last_int(overrides: Sequence[str], key: str) -> int | None:
    """The largest integer the last `key=` override gives (a sweep's `a,b` counts its longest)."""
    values = [o.split("=", 1)[1] for o in overrides if re.match(rf"\+*{re.escape(key)}=", o)]
    numbers = [int(v) for v in values[-1].split(",") if v.strip().isdigit()] if values else []
    return max(numbers) if numbers else None


def micro_batches(overrides: Sequence[str]) -> int:
    """How many batches a run of these overrides trains: max_steps x gradient accumulation."""
    steps = _last_int(overrides, "trainer.max_steps") or UNKNOWN_STEPS
    return steps * (_last_int(overrides, "trainer.accumulate_grad_batches") or 1)


def train_cli(
    *overrides: str,
    jobs: int = 1,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    **where: Any,
) -> subprocess.CompletedProcess:
    """`python train.py ...` in a subprocess started in `cwd` (`where`: train_args' run_dir,
    resume, data_dir, root_dir, sweep_dir, multirun); its time limit follows its work: the
    batches it trains, the `jobs` of a sweep, and the two processes of `trainer=ddp_sim`."""
    args = train_args(*overrides, **where)
    args[0] = str(ROOT / args[0])
    processes = 2 if "trainer=ddp_sim" in overrides else 1
    steps = micro_batches(overrides)
    return run_cli(args, cwd, steps=steps, jobs=jobs, processes=processes, env=env)


def fit(tmp_path: Path, *overrides: str) -> float | None:
    """`run(cfg)` in this process on the config `python train.py` would compose, with the run
    in `tmp_path/run` and the data in `tmp_path/data` (overridable); returns the final val loss."""
    from parrot_lm.training.run import run

    return run(compose_train(tmp_path, list(overrides)))
