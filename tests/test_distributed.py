"""DDP through Lightning on CPU (`trainer=ddp_sim`: 2 processes, gloo), as a user launches it.

Two ranks with half the batch each must train exactly like one process with the whole batch
(same curve to float tolerance), see disjoint data, share one run dir, and resume exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, SMALL_CORPUS, TINY_MODEL, assert_user_error, run_cli

GLOBAL_BATCH = 8
STEPS = 6
BASE = [
    *TINY_MODEL,
    *SMALL_CORPUS,
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.deterministic=true",
    f"trainer.max_steps={STEPS}",
    "val_every_n_steps=3",
    "trainer.limit_val_batches=3",
    "optim.warmup_steps=2",
    "sample.max_new_tokens=0",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory, small_data_dir) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    (root / "data").symlink_to(small_data_dir)
    return root


def train(work: Path, record: Path, *overrides: str):
    return run_cli(
        [
            "train.py",
            f"paths.data_dir={work / 'data'}",
            f"paths.log_dir={work / 'outputs'}",
            *BASE,
            "+callbacks.recorder._target_=tests.helpers.BatchRecorder",
            f"+callbacks.recorder.path={record}",
            *overrides,
        ],
        cwd=ROOT,
    )


def read_records(path: Path) -> tuple[dict[int, tuple[float, list[str]]], dict[int, float]]:
    """train: step after the batch -> (loss, row hashes); val: step -> loss. Later lines win."""
    train, val = {}, {}
    for line in path.read_text().splitlines():
        kind, step, loss, *rows = line.split()
        if kind == "train":
            train[int(step)] = (float.fromhex(loss), rows[0].split(","))
        else:
            val[int(step)] = float.fromhex(loss)
    return train, val


@pytest.fixture(scope="module")
def runs(work: Path) -> dict[str, Path]:
    """One process with the global batch, and two ddp_sim ranks with half of it each."""
    single = train(
        work,
        work / "single",
        "trainer=cpu",
        f"data.batch_size={GLOBAL_BATCH}",
        f"hydra.run.dir={work / 'single_run'}",
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = train(work, work / "ddp", "trainer=ddp_sim", f"data.batch_size={GLOBAL_BATCH // 2}")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run_dirs = sorted((work / "outputs" / "runs").glob("*/*"))
    return {"single": work / "single", "ddp": work / "ddp", "ddp_runs": run_dirs}


def test_two_ranks_train_like_one_process_with_the_same_global_batch(runs):
    single_train, single_val = read_records(Path(f"{runs['single']}.rank0"))
    rank0_train, rank0_val = read_records(Path(f"{runs['ddp']}.rank0"))
    rank1_train, _ = read_records(Path(f"{runs['ddp']}.rank1"))
    assert (
        sorted(single_train)
        == sorted(rank0_train)
        == sorted(rank1_train)
        == list(range(1, STEPS + 1))
    )
    for step, (loss, _) in single_train.items():
        mean = (rank0_train[step][0] + rank1_train[step][0]) / 2  # what DDP's gradient averages
        assert math.isclose(loss, mean, rel_tol=0, abs_tol=2e-5), (step, loss, mean)
    # Validation covers the same windows (summed over ranks) at steps 0, 3 and 6.
    assert sorted(single_val) == sorted(rank0_val) == [0, 3, 6]
    for step, loss in single_val.items():
        assert math.isclose(loss, rank0_val[step], abs_tol=2e-5), (step, loss, rank0_val[step])
    assert single_val[6] < single_val[0]  # and it learned


def test_ranks_see_disjoint_data_that_together_is_the_single_process_batch(runs):
    single_train, _ = read_records(Path(f"{runs['single']}.rank0"))
    rank0_train, _ = read_records(Path(f"{runs['ddp']}.rank0"))
    rank1_train, _ = read_records(Path(f"{runs['ddp']}.rank1"))
    seen = defaultdict(set)
    for step in single_train:
        rows0, rows1 = rank0_train[step][1], rank1_train[step][1]
        assert len(rows0) == len(rows1) == GLOBAL_BATCH // 2
        assert not set(rows0) & set(rows1), f"ranks share a window at step {step}"
        assert sorted(rows0 + rows1) == sorted(single_train[step][1])
        seen[0].update(rows0)
        seen[1].update(rows1)
    assert not seen[0] & seen[1]


def test_ddp_writes_one_run_dir_with_one_set_of_checkpoints(runs):
    run_dirs = runs["ddp_runs"]
    assert len(run_dirs) == 1, run_dirs  # rank 1 did not make a dir of its own
    run_dir = run_dirs[0]
    assert (run_dir / "run_config.yaml").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == STEPS
    assert ckpt["tokens_seen"] == STEPS * GLOBAL_BATCH * 32
    # Both ranks hold the same weights, so the one checkpoint is the model.
    assert "loops" in ckpt and ckpt["state_dict"]


def test_ddp_resumes_exactly_after_one_rank_is_stopped(work, runs, tmp_path):
    """SIGTERM to rank 1 only: both ranks stop at the same step, rank 0 saves, and the resumed
    run reproduces the uninterrupted DDP run bit for bit."""
    run_dir = work / "killed_run"
    record = work / "killed"
    stopped = train(
        work,
        record,
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        f"hydra.run.dir={run_dir}",
        "+callbacks.kill._target_=tests.helpers.SignalAt",
        "+callbacks.kill.step=2",
        "+callbacks.kill.signal_name=SIGTERM",
        "+callbacks.kill.rank=1",
    )
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3  # the step in flight was finished on both ranks
    resumed = run_cli(
        [
            "train.py",
            f"resume={run_dir}",
            f"paths.data_dir={work / 'data'}",
            "+callbacks.kill.step=1000000000",
        ],
        cwd=ROOT,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        reference, _ = read_records(Path(f"{runs['ddp']}.rank{rank}"))
        again, _ = read_records(Path(f"{record}.rank{rank}"))
        assert again == reference, f"rank {rank} differs after resume"
    ref_dir = runs["ddp_runs"][0]
    a = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_local_multirun_of_ddp_is_refused_with_a_sentence(work, tmp_path):
    proc = run_cli(
        [
            "train.py",
            "-m",
            "trainer=ddp_sim",
            "optim.lr=1e-3,3e-4",
            f"paths.data_dir={work / 'data'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *BASE,
        ],
        cwd=ROOT,
    )
    assert_user_error(proc, "cannot do; sweep with hydra/launcher=slurm")
    assert not list((tmp_path / "sweep").glob("*/checkpoints/*.ckpt"))


POISON_RANK1_AT_3 = [
    "+callbacks.poison._target_=tests.helpers.PoisonWeightsAt",
    "+callbacks.poison.step=3",
    "+callbacks.poison.restore=true",
]


def test_a_nonfinite_loss_on_one_rank_is_skipped_by_every_rank(work, tmp_path):
    """nonfinite_loss=skip under DDP: a NaN on rank 1 only makes both ranks skip that step,
    exactly as one process skips the whole global batch (no update, not even momentum)."""
    skip = ["nonfinite_loss=skip", f"paths.log_dir={tmp_path}", *POISON_RANK1_AT_3]
    single = train(
        work,
        tmp_path / "single",
        *skip,
        "trainer=cpu",
        f"data.batch_size={GLOBAL_BATCH}",
        f"hydra.run.dir={tmp_path / 'single_run'}",
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = train(
        work,
        tmp_path / "ddp",
        *skip,
        "+callbacks.poison.rank=1",
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        f"hydra.run.dir={tmp_path / 'ddp_run'}",
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    out = ddp.stdout + ddp.stderr
    assert "The training loss became nan at step 3" in out  # rank 1
    assert "became non-finite on another rank at step 3" in out  # rank 0
    a, b = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
        for run in ("single_run", "ddp_run")
    )
    assert a["global_step"] == b["global_step"] == STEPS
    for name, weight in a["state_dict"].items():
        assert torch.isfinite(b["state_dict"][name]).all()
        torch.testing.assert_close(b["state_dict"][name], weight, atol=1e-5, rtol=0)


def test_a_nonfinite_loss_on_one_rank_stops_every_rank_with_a_sentence(work, tmp_path):
    proc = train(
        work,
        tmp_path / "ddp",
        f"paths.log_dir={tmp_path}",
        *POISON_RANK1_AT_3,
        "+callbacks.poison.rank=1",
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
    )
    assert_user_error(proc, "The training loss became nan at step 3")
    assert "became non-finite on another rank at step 3" in proc.stderr  # rank 0 stops too
    assert "Connection closed" not in proc.stderr  # not a crash of the other rank
