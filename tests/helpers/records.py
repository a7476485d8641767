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


def wait_for_the_next_second() -> None:
    """Call before resuming a run in the process that trained it, when the test reads its
    TensorBoard events back in order. TensorBoard reads a run's event files in name order:
    `events.out.tfevents.<second>.<host>.<pid>.<n>`, where n counts the process's writers and
    is not zero-padded (10 sorts before 9). Within one second and one process, the resumed
    run's file could then be read before the one it continues. A real resume is a new process,
    seconds later; this makes the creation second of the resumed file the later one."""
    import time

    time.sleep(1.0 - time.time() % 1.0 + 0.01)


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


def wandb_records(path: Path) -> list:
    """The protobuf records of a W&B `.wandb` file (offline run), in order.

    wandb no longer ships a Python reader; the file is a LevelDB-style log: a 7-byte header
    (`:W&B`, magic, version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32,
    little-endian length, type: 1 whole, 2 first, 3 middle, 4 last) holding a serialized
    `wandb_internal_pb2.Record`; a block's tail shorter than a chunk header is padding.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B", f"{path} is not a W&B log"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a block being written
            pos += block - pos % block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def wandb_run(path: Path, wait_s: float = 60.0) -> dict:
    """An offline W&B run file read back: its run id, its history rows ({metric: value}, JSON
    decoded) and its config updates ({key: value}).

    `run.finish()` returns before wandb's service has written the file to its end (measured
    with wandb 0.31 offline: ~10 ms later), so this waits up to `wait_s` for the run's `exit`
    record.
    """
    import json
    import time

    deadline = time.monotonic() + wait_s
    records = wandb_records(path)
    while not any(r.WhichOneof("record_type") == "exit" for r in records):
        assert time.monotonic() < deadline, f"{path} has no exit record after {wait_s} s"
        time.sleep(0.1)
        records = wandb_records(path)
    run_id, history, config = None, [], {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            history.append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    return {"id": run_id, "history": history, "config": config}
