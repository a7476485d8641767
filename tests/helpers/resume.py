"""Exact-resume tests' shared parts: the epoch length of the small corpus, and uninterrupted
reference runs made once per session for every worker (tests/e2e/test_resume_*.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.helpers.callbacks import DISARM_SIGNAL, loss_recorder, signal_at
from tests.helpers.cli import output
from tests.helpers.config import RESUME, RESUME_BATCH
from tests.helpers.shared import build_once
from tests.helpers.training import train_cli


def batches_per_epoch(data_dir: Path) -> int:
    """Training batches in one epoch of the prepared stories in `data_dir` (context 32)."""
    from parrot_lm.data.dataset import TokenWindows
    from parrot_lm.data.shards import read_meta

    meta = read_meta(data_dir / "stories")
    shard = meta["splits"]["train"]["shards"][0]
    windows = TokenWindows(
        [(data_dir / "stories" / shard["file"], shard["num_tokens"])],
        meta["dtype"],
        context_length=32,
    )
    return len(windows) // RESUME_BATCH


def reference_run(tmp_path_factory, data_dir: Path, max_steps: int, *overrides: str) -> Path:
    """The run dir of an uninterrupted RESUME run of `max_steps` with `overrides` (its losses in
    `<run dir>.losses`), trained once per session whichever worker asks first."""
    key = "\n".join([str(max_steps), *overrides])
    name = f"resume-reference-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def train(root: Path) -> None:
        run_dir = root / "run"
        proc = train_cli(
            *RESUME,
            *loss_recorder(f"{run_dir}.losses"),
            f"trainer.max_steps={max_steps}",
            *overrides,
            run_dir=run_dir,
            data_dir=data_dir,
        )
        assert proc.returncode == 0, output(proc)[-3000:]

    return build_once(tmp_path_factory, name, train) / "run"


def stop_run(run_dir: Path, data_dir: Path, n: int, k: int, signal_name: str, *extra: str):
    """Train towards `n` optimizer steps, checkpointing every `k`, and send `signal_name` two
    (micro-)batches after the checkpoint at step k (orphan work past it)."""
    return train_cli(
        *RESUME,
        *loss_recorder(f"{run_dir}.losses"),
        f"trainer.max_steps={n}",
        f"ckpt_every_n_steps={k}",
        *extra,
        *signal_at(k, signal_name, skip_batches=2),
        run_dir=run_dir,
        data_dir=data_dir,
    )


def resume_run(run_dir: Path, data_dir: Path, n: int, *extra: str):
    """Resume a stopped run to `n` optimizer steps, its signal callback disarmed."""
    return train_cli(
        *RESUME,
        *loss_recorder(f"{run_dir}.losses"),
        f"trainer.max_steps={n}",
        *extra,
        DISARM_SIGNAL,
        resume=run_dir,
        data_dir=data_dir,
    )
