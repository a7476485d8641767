"""How a run fits the way it was launched: parallel joblib jobs, Hydra multirun, SLURM.

Hydra's joblib launcher runs several jobs at once in worker processes but assigns them no GPU
and leaves every job with all CPU threads; Lightning's DDP launcher re-runs the command for
each rank, which a local multirun cannot do. Each job sorts this out here, before its Trainer
exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import ConfigError

log = logging.getLogger(__name__)

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@dataclass
class ParallelJob:
    """A job running beside others in one local sweep: how many at once, and where locks live."""

    n_parallel: int
    lock_dir: Path


def parallel_job() -> ParallelJob | None:
    """This job's place in a joblib sweep, or None when it runs alone (or under SLURM)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    n_jobs = int(hydra_cfg.launcher.get("n_jobs") or 1)
    if n_jobs < 0:  # joblib: -1 = one per CPU, -2 = all but one, ...
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return ParallelJob(n_parallel=n_jobs, lock_dir=Path(hydra_cfg.sweep.dir) / ".device-locks")


def threads_per_job(n_parallel: int, n_cpus: int | None = None) -> int:
    """CPU threads each of n_parallel concurrent jobs may use without oversubscribing."""
    return max(1, (n_cpus or os.cpu_count() or 1) // max(1, n_parallel))


def claim_device(lock_dir: Path, n_devices: int) -> tuple[int, FileLock] | None:
    """Take the first free device index (a lock file per device, held until released);
    None when every device is taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(n_devices):
        lock = FileLock(lock_dir / f"device{index}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        return index, lock
    return None


def uses_one_device(devices: Any) -> bool:
    return devices in (1, "1", "auto") or (isinstance(devices, list) and len(devices) == 1)


def fit_to_launcher(cfg: DictConfig, stack: contextlib.ExitStack) -> None:
    """Give a parallel joblib job its own GPU (when there are several) and its share of the
    CPU threads; refuse a local multirun of re-launching DDP. Edits cfg.trainer in place."""
    check_multirun_strategy(cfg)
    job = parallel_job()
    if job is None:
        return
    threads = threads_per_job(job.n_parallel)
    torch.set_num_threads(threads)
    accelerator = str(cfg.trainer.accelerator)
    n_gpus = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") else 0
    device = None
    if n_gpus > 1 and uses_one_device(cfg.trainer.devices):
        claimed = claim_device(job.lock_dir, n_gpus)
        if claimed is None:
            raise ConfigError(
                f"All {n_gpus} GPUs are taken by other jobs of this sweep; set "
                f"hydra.launcher.n_jobs to at most {n_gpus}."
            )
        device, lock = claimed
        stack.callback(lock.release)
        cfg.trainer.devices = [device]
    log.info(
        "Parallel sweep job (%d at once): %d CPU threads%s",
        job.n_parallel,
        threads,
        f", GPU {device}" if device is not None else "",
    )


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_multirun_strategy(cfg: DictConfig) -> None:
    """Lightning starts DDP/FSDP ranks by re-running the command line; inside a local Hydra
    multirun that would start the whole sweep again in every rank."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not in_multirun():
        return
    if SLURMEnvironment.detect():  # SLURM starts one task per rank itself
        return
    strategy = cfg.trainer.strategy
    if OmegaConf.is_config(strategy):
        name = str(strategy.get("_target_", "")).rsplit(".", 1)[-1].lower()
        spawn = strategy.get("start_method", "popen") != "popen"
    else:
        name, spawn = str(strategy).lower(), "spawn" in str(strategy).lower()
    distributed = ("ddp" in name or "fsdp" in name) and not uses_one_device(cfg.trainer.devices)
    if distributed and not spawn:
        raise ConfigError(
            "DDP/FSDP ranks are started by re-running the command, which a local multirun (-m) "
            "cannot do; sweep with hydra/launcher=slurm, run each job without -m, or, for DDP, "
            "add +trainer.strategy.start_method=spawn."
        )
