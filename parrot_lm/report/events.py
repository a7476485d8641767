"""Reading one job: its overrides, max steps, last checkpoint's step and TensorBoard scalars."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from parrot_lm.report.jobs import Job, Series
from parrot_lm.runs.resume import override_key
from parrot_lm.runs.run_dir import RunDir

# Where a run lives, not what it is: never a column of the report.
IGNORED_OVERRIDE_KEYS = ("resume", "paths", "hydra")


def load_yaml(path: Path) -> Any:
    """A YAML file as plain containers (unresolved), or None with a warning when unreadable:
    the row still shows the metrics."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # unreadable config: the row still shows the metrics
        print(f"warning: cannot read {path} ({type(e).__name__}); ignoring it.", file=sys.stderr)
        return None


def read_overrides(job_dir: Path) -> list[str]:
    """The job's command-line overrides as Hydra recorded them, less those saying where it
    lives (resume=, paths.*, hydra.*); [] when there is no readable record."""
    path = RunDir(job_dir).overrides
    if not path.is_file():
        return []
    loaded = load_yaml(path)
    if not isinstance(loaded, list):
        return []
    return [
        str(o) for o in loaded if override_key(str(o)).split(".")[0] not in IGNORED_OVERRIDE_KEYS
    ]


def read_max_steps(job_dir: Path) -> int | None:
    """trainer.max_steps from the run config (else Hydra's composed config); None if neither
    has it."""
    run = RunDir(job_dir)
    for path in (run.run_config, run.hydra_config):
        if path.is_file():
            cfg = load_yaml(path)
            try:
                return int(cfg["trainer"]["max_steps"])
            except (TypeError, KeyError, ValueError):
                continue
    return None


def read_ckpt_progress(job_dir: Path) -> tuple[int | None, int | None]:
    """global_step and tokens_seen (None where absent) of the run's last checkpoint, read
    memory-mapped (the weights are not read); (None, None) without a readable one."""
    path = RunDir(job_dir).last_checkpoint
    if not path.is_file():
        return None, None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        tokens = ckpt.get("tokens_seen")
        return int(ckpt["global_step"]), int(tokens) if tokens is not None else None
    except Exception as e:  # truncated or foreign: the run is not done
        print(f"warning: cannot read {path} ({type(e).__name__}); ignoring it.", file=sys.stderr)
        return None, None


def event_dirs(job_dir: Path) -> list[Path]:
    """Dirs holding events files: the run's TensorBoard dir (and any version subdir), else the
    job dir."""
    tb = RunDir(job_dir).tensorboard
    roots = [tb] if tb.is_dir() else [job_dir]
    found = set()
    for root in roots:
        for events in root.rglob("events.out.tfevents.*"):
            found.add(events.parent)
    return sorted(found)


def _accumulate(directory: Path, points: dict[str, dict[int, tuple[float, float]]]) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        str(directory),
        size_guidance={
            ea.SCALARS: 0,  # keep every scalar
            ea.TENSORS: 1,
            ea.IMAGES: 1,
            ea.AUDIO: 1,
            ea.HISTOGRAMS: 1,
            ea.COMPRESSED_HISTOGRAMS: 1,
        },
    )
    acc.Reload()
    for tag in acc.Tags().get("scalars", []):
        by_step = points.setdefault(tag, {})
        for event in acc.Scalars(tag):  # in file order (file names start with the time)
            by_step[event.step] = (event.wall_time, float(event.value))  # a later write wins


def read_scalars(job_dir: Path) -> tuple[dict[str, Series], float | None, float | None]:
    """All scalars of a run, one value per step (later events for a step win: a resumed run
    rewrites the steps after its checkpoint), and the first and last event wall times."""
    points: dict[str, dict[int, tuple[float, float]]] = {}
    # A resumed run's "out of order event.step ... purging" notice is expected here: quiet it.
    tb_log = logging.getLogger("tensorboard")
    level = tb_log.level
    tb_log.setLevel(logging.ERROR)
    try:
        for directory in event_dirs(job_dir):
            _accumulate(directory, points)
    finally:
        tb_log.setLevel(level)
    scalars: dict[str, Series] = {}
    walls: list[float] = []
    for tag, by_step in points.items():
        steps = sorted(by_step)
        scalars[tag] = Series(steps, [by_step[s][1] for s in steps])
        walls.extend(w for w, _ in by_step.values())
    return scalars, (min(walls) if walls else None), (max(walls) if walls else None)


def load_job(job: Job) -> Job:
    """Fill `job` in from its run dir (overrides, scalars, wall times, max and last step)."""
    job.overrides = read_overrides(job.path)
    job.scalars, job.first_wall_time, job.last_wall_time = read_scalars(job.path)
    job.max_steps = read_max_steps(job.path)
    job.ckpt_step, job.ckpt_tokens = read_ckpt_progress(job.path)
    return job
