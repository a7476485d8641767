"""Exact resume: a run killed after the checkpoint at step k and resumed matches the
uninterrupted run bit for bit (per-step loss and final weights)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from parrot_lm.data.dataset import TokenWindows
from tests.conftest import ROOT, SMALL_CORPUS, TINY_MODEL, run_cli

BATCH = 8
BASE = [
    *TINY_MODEL,
    "model.dropout=0.1",  # so the RNG state matters
    *SMALL_CORPUS,
    f"data.batch_size={BATCH}",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.limit_val_batches=2",
    "val_every_n_steps=5",
    "sample.max_new_tokens=0",
    "optim.warmup_steps=3",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory, small_data_dir) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "data").symlink_to(small_data_dir)
    return root


def batches_per_epoch(work: Path) -> int:
    from parrot_lm.data.shards import read_meta

    meta = read_meta(work / "data" / "stories")
    shard = meta["splits"]["train"]["shards"][0]
    windows = TokenWindows(
        [(work / "data" / "stories" / shard["file"], shard["num_tokens"])],
        meta["dtype"],
        context_length=32,
    )
    return len(windows) // BATCH


def train(work: Path, run_dir: Path, *overrides: str, resume: bool = False):
    where = [f"resume={run_dir}"] if resume else [f"hydra.run.dir={run_dir}"]
    args = [
        "train.py",
        *where,
        f"paths.data_dir={work / 'data'}",
        *BASE,
        "+callbacks.recorder._target_=tests.helpers.LossRecorder",
        f"+callbacks.recorder.path={run_dir}.losses",
        *overrides,
    ]
    return run_cli(args, cwd=ROOT)


def records(path: Path) -> dict[tuple[int, int], tuple[int, str]]:
    """(epoch, batch_idx) -> (global_step, loss hex); later lines win (a resume re-does work)."""
    out = {}
    for line in path.read_text().splitlines():
        epoch, batch, step, loss = line.split()
        out[(int(epoch), int(batch))] = (int(step), loss)
    return out


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return ckpt["state_dict"]


def assert_same_run(reference: Path, resumed: Path) -> None:
    ref, res = records(Path(f"{reference}.losses")), records(Path(f"{resumed}.losses"))
    assert res == ref
    a, b = final_weights(reference), final_weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights differ"


# Overrides on resume apply on top of the run's saved config, which holds the kill callback.
DISARM = "+callbacks.kill.step=1000000000"

_references: dict[tuple[str, ...], Path] = {}


def reference_run(work: Path, max_steps: int, *overrides: str) -> Path:
    key = (str(max_steps), *overrides)
    if key not in _references:
        run_dir = work / f"reference{len(_references)}"
        proc = train(work, run_dir, f"trainer.max_steps={max_steps}", *overrides)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _references[key] = run_dir
    return _references[key]


def kill_and_resume(
    work: Path,
    name: str,
    max_steps: int,
    k: int,
    overrides: list[str],
    skip_batches: int = 2,
    signal_name: str = "SIGKILL",
):
    run_dir = work / name
    proc = train(
        work,
        run_dir,
        f"trainer.max_steps={max_steps}",
        f"ckpt_every_n_steps={k}",
        *overrides,
        "+callbacks.kill._target_=tests.helpers.SignalAt",
        f"+callbacks.kill.step={k}",
        f"+callbacks.kill.signal_name={signal_name}",
        f"+callbacks.kill.skip_batches={skip_batches}",
    )
    return run_dir, proc


@pytest.mark.parametrize("where", ["inside_epoch", "last_step_of_epoch", "before_epoch_end"])
def test_sigkill_then_resume_is_bitwise_identical(work, where):
    spe = batches_per_epoch(work)
    assert spe >= 8
    k = {"inside_epoch": spe // 2, "last_step_of_epoch": spe, "before_epoch_end": spe - 1}[where]
    n = 2 * spe + 3
    reference = reference_run(work, n)
    run_dir, proc = kill_and_resume(work, where, n, k, [])
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == k
    killed_batches = len(Path(f"{run_dir}.losses").read_text().splitlines())
    assert killed_batches == k + 2  # two batches of orphan work past the checkpoint

    proc = train(work, run_dir, f"trainer.max_steps={n}", DISARM, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in proc.stdout + proc.stderr
    assert_same_run(reference, run_dir)
    # One TensorBoard run, continuous: the killed run's orphan points are purged.
    steps = scalar_steps(run_dir, "train/loss")
    assert steps == sorted(set(steps)) == scalar_steps(reference, "train/loss")


def test_a_moved_run_dir_resumes_in_its_new_place(work):
    """The saved config holds resolved paths of the old run dir (checkpoints, TensorBoard);
    a resume after `mv` writes only to the new one and still continues exactly."""
    spe = batches_per_epoch(work)
    n = 2 * spe + 3
    reference = reference_run(work, n)
    old, new = work / "before_move", work / "after_move"
    _, proc = kill_and_resume(work, old.name, n, spe // 2, [])
    assert proc.returncode == -signal.SIGKILL
    old.rename(new)
    Path(f"{old}.losses").rename(f"{new}.losses")

    proc = train(work, new, f"trainer.max_steps={n}", DISARM, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not old.exists()
    assert torch.load(new / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == n
    assert_same_run(reference, new)
    assert scalar_steps(new, "train/loss") == scalar_steps(reference, "train/loss")


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return [e.step for e in events.Scalars(tag)]


def test_accumulation_and_workers_resume_exactly(work):
    spe = batches_per_epoch(work)
    extra = ["trainer.accumulate_grad_batches=4", "data.num_workers=2"]
    steps_per_epoch = spe // 4  # an epoch is a whole number of optimizer steps
    n = 2 * steps_per_epoch + 2
    k = steps_per_epoch + 1  # inside the second epoch
    reference = reference_run(work, n, *extra)
    # Validation right after every 5th optimizer step, across epoch boundaries, logged at
    # that step.
    assert scalar_steps(reference, "val/loss") == [0, *range(5, n + 1, 5)]
    run_dir, proc = kill_and_resume(work, "accumulate", n, k, extra, skip_batches=2)
    assert proc.returncode == -signal.SIGKILL
    proc = train(work, run_dir, f"trainer.max_steps={n}", *extra, DISARM, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(reference, run_dir)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_sigterm_or_sigint_saves_current_step_and_resumes_exactly(work, signal_name):
    spe = batches_per_epoch(work)
    extra = ["trainer.accumulate_grad_batches=4", "data.num_workers=2"]
    steps_per_epoch = spe // 4
    n = 2 * steps_per_epoch + 2
    reference = reference_run(work, n, *extra)
    # SIGTERM two micro-batches into step 4: the step is finished, then saved.
    run_dir, proc = kill_and_resume(
        work, signal_name, n, 3, extra, skip_batches=2, signal_name=signal_name
    )
    assert proc.returncode == 128 + getattr(signal, signal_name), proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Saved" in out and "resume with" in out
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    proc = train(work, run_dir, f"trainer.max_steps={n}", *extra, DISARM, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(reference, run_dir)


def test_slurm_sigusr1_requeues_into_the_same_dir_and_resumes(work, tmp_path):
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
    spe = batches_per_epoch(work)
    n = 2 * spe + 3
    reference = reference_run(work, n)
    run_dir = tmp_path / "outputs" / "runs" / "slurm-4242"
    args = [
        "train.py",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={work / 'data'}",
        *BASE,
        f"trainer.max_steps={n}",
        "+callbacks.recorder._target_=tests.helpers.LossRecorder",
        f"+callbacks.recorder.path={run_dir}.losses",
        "+callbacks.kill._target_=tests.helpers.SignalAt",
        "+callbacks.kill.signal_name=SIGUSR1",
    ]
    proc = run_cli([*args, "+callbacks.kill.step=5"], cwd=ROOT, env=env)
    assert proc.returncode == 128 + signal.SIGUSR1, proc.stderr[-3000:]
    assert (tmp_path / "scontrol").read_text().split() == ["requeue", "4242"]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    # SLURM starts the same command again with the same job id: it resumes in the same dir.
    proc = run_cli([*args, DISARM], cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in proc.stdout + proc.stderr
    assert_same_run(reference, run_dir)
