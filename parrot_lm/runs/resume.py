"""Continue a run in its own run dir: same config, same TensorBoard run, same checkpoints.

The run's config is the one it started with (saved as `run_config.yaml`); command-line
overrides on resume may change how the run is watched and how long it goes, never what it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import ConfigError
from parrot_lm.runs.run_dir import LAST, RunDir, checkpoint_candidates, step_of

log = logging.getLogger(__name__)

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
    "data.data_dir",  # where the corpus is; what it is, is checked (runs/identity.py)
    "logger",
    "callbacks",
    "sample",
    "checkpoint_io",
    "paths",
    "speed",
)


# Class paths that moved when the package was laid out by stage. A run_config.yaml saved before
# names the old ones; resuming such a run builds its callbacks from the new ones.
MOVED_TARGETS = {
    f"parrot_lm.{old}": f"parrot_lm.{new}"
    for old, new in (
        ("checkpoint.AtomicCheckpointIO", "training.checkpointing.AtomicCheckpointIO"),
        ("checkpoint.PeriodicCheckpoint", "training.checkpointing.PeriodicCheckpoint"),
        ("sampling.TextSamples", "training.callbacks.samples.TextSamples"),
        ("hparams.HParamsSummary", "training.callbacks.hparams.HParamsSummary"),
        ("strategies.fsdp", "training.strategies.fsdp"),
    )
}


def upgrade_run_config(saved: DictConfig) -> DictConfig:
    """A saved run config with every moved `_target_` renamed (see MOVED_TARGETS)."""

    def walk(node):
        if isinstance(node, dict):
            return {
                k: MOVED_TARGETS.get(v, v) if k == "_target_" else walk(v) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return OmegaConf.create(walk(OmegaConf.to_container(saved)))


def override_key(override: str) -> str:
    """`+a.b=1` / `~a.b` / `a.b=1` / `group=option` -> the dotted key it touches."""
    return override.split("=", 1)[0].lstrip("+~")


def is_mutable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in MUTABLE_ON_RESUME)


def merge_resume_config(saved: DictConfig, current: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved run config with the mutable overrides applied; a changed immutable one is an
    error naming the key, the run's value and the requested one."""
    saved = upgrade_run_config(saved)
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
        old = _fixed_part(_plain(OmegaConf.select(saved, key, default=None)), key)
        new = _fixed_part(_plain(new), key)
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


def _fixed_part(value, key: str):
    """`value` of `key` without the parts a resume may change (`data=local` compares the data
    config, not where its directory is)."""
    if isinstance(value, dict):
        return {
            k: _fixed_part(v, f"{key}.{k}")
            for k, v in value.items()
            if not is_mutable(f"{key}.{k}")
        }
    return value


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_resume_argument(argv: list[str]) -> None:
    """Refuse `resume=<dir>` for a dir that is not a ParrotLM run before Hydra writes into it."""
    for arg in argv:
        if arg.startswith("resume=") and arg != "resume=null":
            RunDir(arg.split("=", 1)[1]).load_config()  # raises the sentence that fits


def check_steps_left(max_steps: int, start_step: int) -> None:
    """Refuse a resume whose trainer.max_steps is below the step its checkpoint reached: it
    would train nothing, and its loggers would drop the history past max_steps."""
    if max_steps < start_step:
        raise ConfigError(
            f"trainer.max_steps={max_steps} is below the step this run has reached "
            f"({start_step}); pass trainer.max_steps > {start_step} to train further, or "
            f"evaluate it as it is."
        )


def warn_of_rewind(ckpt_dir: Path, step: int) -> None:
    """Warn when this run continues from a step before its newest checkpoints (a rewind,
    `ckpt_path=step0000050.ckpt`): they are overwritten as the run gets to their steps."""
    later = sorted(p.name for p in checkpoint_candidates(ckpt_dir) if (step_of(p) or 0) > step)
    if later:
        last = f" and {LAST}" if (ckpt_dir / LAST).is_file() else ""
        log.warning(
            "Continuing from step %d, before this run's newer checkpoints: %s%s are overwritten "
            "as the run reaches their steps; copy them elsewhere first to keep them.",
            step,
            ", ".join(later),
            last,
        )
