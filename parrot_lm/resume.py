"""Continue a run in its own run dir: same config, same TensorBoard run, same checkpoints.

The run's config is the one it started with (saved as `run_config.yaml`); command-line
overrides on resume may change how the run is watched and how long it goes, never what it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from parrot_lm.errors import ConfigError

RUN_CONFIG = "run_config.yaml"
# Keys (and their children) that a resume may change. Everything else must stay as it was.
MUTABLE_ON_RESUME = (
    "resume",
    "ckpt_path",
    "trainer.max_steps",
    "trainer.limit_val_batches",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.num_sanity_val_steps",
    "val_every_n_steps",
    "ckpt_every_n_steps",
    "data.num_workers",
    "logger",
    "callbacks",
    "sample",
    "checkpoint_io",
    "paths",
    "speed",
)


def default_run_dir(resume: str | None, log_dir: str, timestamp: str) -> str:
    """Hydra's run dir: the resumed run's own dir, a stable per-job dir under SLURM (so a
    requeued job finds its checkpoints), or a new timestamped dir."""
    if resume:
        return str(resume)
    job_id = os.environ.get("SLURM_JOB_ID")
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    if job_id and not interactive:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"{log_dir}/runs/slurm-{job_id}" + (f"_{task}" if task else "")
    return f"{log_dir}/runs/{timestamp}"


def override_key(override: str) -> str:
    """`+a.b=1` / `~a.b` / `a.b=1` / `group=option` -> the dotted key it touches."""
    return override.split("=", 1)[0].lstrip("+~")


def is_mutable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in MUTABLE_ON_RESUME)


def merge_resume_config(saved: DictConfig, current: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved run config with the mutable overrides applied; a changed immutable one is an
    error naming the key, the run's value and the requested one."""
    merged = saved.copy()
    for override in overrides:
        key = override_key(override)
        if key.startswith("hydra"):
            continue
        new = OmegaConf.select(current, key, default=None)
        if is_mutable(key):
            if override.startswith("~"):
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(merged, parent) if parent else merged
                if node is not None and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(merged, key, new, force_add=True, merge=False)
            continue
        old, new = _plain(OmegaConf.select(saved, key, default=None)), _plain(new)
        if old != new:
            raise ConfigError(
                f"Cannot change {key} when resuming (the run has {old!r}, the command asks for "
                f"{new!r}); start a new run to change it."
            )
    # Where things live is always today's answer (the run dir may have moved): the saved config
    # is resolved, so paths derived from the old run dir (checkpoints, logs) move with it.
    old_dir, new_dir = OmegaConf.select(saved, "paths.output_dir"), current.paths.output_dir
    if old_dir and str(old_dir) != str(new_dir):
        moved = _relocate(OmegaConf.to_container(merged), str(old_dir).rstrip("/"), str(new_dir))
        merged = OmegaConf.create(moved)
    for key in ("resume", "ckpt_path", "paths"):
        OmegaConf.update(merged, key, current.get(key), force_add=True, merge=False)
    return merged


def _relocate(node, old_dir: str, new_dir: str):
    """`node` with every string that is `old_dir` (no trailing slash) or a path inside it
    rebased onto `new_dir`."""
    if isinstance(node, dict):
        return {k: _relocate(v, old_dir, new_dir) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocate(v, old_dir, new_dir) for v in node]
    if isinstance(node, str) and (node == old_dir or node.startswith(old_dir + "/")):
        return new_dir + node[len(old_dir) :]
    return node


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_resume_argument(argv: list[str]) -> None:
    """Refuse `resume=<dir>` for a dir that is not a ParrotLM run before Hydra writes into it."""
    for arg in argv:
        if arg.startswith("resume=") and arg != "resume=null":
            run_dir = Path(arg.split("=", 1)[1])
            if not (run_dir / RUN_CONFIG).is_file():
                load_run_config(run_dir)  # raises the sentence that fits


def load_run_config(run_dir: Path) -> DictConfig:
    path = run_dir / RUN_CONFIG
    if not run_dir.is_dir():
        raise ConfigError(f"Cannot resume: run dir {run_dir} does not exist.")
    if not path.is_file():
        raise ConfigError(
            f"Cannot resume: {run_dir} has no {RUN_CONFIG}, so it is not a ParrotLM run dir."
        )
    return OmegaConf.load(path)


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    from parrot_lm.data.shards import atomic_write_bytes

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / RUN_CONFIG, OmegaConf.to_yaml(cfg, resolve=True).encode())
