"""Reading what the recorder callbacks (tests.helpers.callbacks) and a run dir hold, and the
bit-for-bit comparison of two runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def loss_records(path: Path) -> dict[tuple[int, int], tuple[int, str]]:
    """LossRecorder's file: (epoch, batch_idx) -> (global_step, loss hex); later lines win (a
    resume re-does work)."""
    out = {}
    for line in path.read_text().splitlines():
        epoch, batch, step, loss = line.split()
        out[(int(epoch), int(batch))] = (int(step), loss)
    return out


def batch_records(path: Path) -> tuple[dict[int, tuple[float, list[str]]], dict[int, float]]:
    """BatchRecorder's file of one rank: train: step after the batch -> (loss, row hashes);
    val: step -> loss. Later lines win."""
    train, val = {}, {}
    for line in path.read_text().splitlines():
        kind, step, loss, *rows = line.split()
        if kind == "train":
            train[int(step)] = (float.fromhex(loss), rows[0].split(","))
        else:
            val[int(step)] = float.fromhex(loss)
    return train, val


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return last_checkpoint(run_dir)["state_dict"]


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    """The steps of a TensorBoard scalar in the run dir's events, in file order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return [e.step for e in events.Scalars(tag)]


def assert_same_run(reference: Path, resumed: Path) -> None:
    """Per-batch losses (`<run>.losses`, exact floats) and final weights identical."""
    ref = loss_records(Path(f"{reference}.losses"))
    res = loss_records(Path(f"{resumed}.losses"))
    assert res == ref
    a, b = final_weights(reference), final_weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights differ"


def checkpoint_hashes(run_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every checkpoint: to prove nothing was lost or rewritten."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run_dir / "checkpoints").glob("*.ckpt"))
    }
