"""DDP through Lightning on CPU (`trainer=ddp_sim`: 2 processes, gloo), as a user launches it.

Two ranks with half the batch each must train exactly like one process with the whole batch
(same curve to float tolerance), see disjoint data, share one run dir, and resume exactly.
A non-finite loss on one rank, and sweeps of DDP: tests/e2e/test_distributed_faults.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from tests.helpers import DDP, DDP_GLOBAL_BATCH, DDP_STEPS, train_cli
from tests.helpers.callbacks import DISARM_SIGNAL, batch_recorder, signal_at
from tests.helpers.records import batch_records

# Scheduling only (tests/conftest.py hands the longest files out first): one process and three
# two-rank launches.
SCHEDULE_SECONDS = 85
GLOBAL_BATCH, STEPS = DDP_GLOBAL_BATCH, DDP_STEPS


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def runs(work: Path, small_data_dir: Path) -> dict[str, Path]:
    """One process with the global batch, and two ddp_sim ranks with half of it each."""
    single = train_cli(
        *DDP,
        *batch_recorder(work / "single"),
        "trainer=cpu",
        f"data.batch_size={GLOBAL_BATCH}",
        f"paths.log_dir={work / 'outputs'}",
        run_dir=work / "single_run",
        data_dir=small_data_dir,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = train_cli(
        *DDP,
        *batch_recorder(work / "ddp"),
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        f"paths.log_dir={work / 'outputs'}",
        data_dir=small_data_dir,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run_dirs = sorted((work / "outputs" / "runs").glob("*/*"))
    return {"single": work / "single", "ddp": work / "ddp", "ddp_runs": run_dirs}


def test_two_ranks_train_like_one_process_with_the_same_global_batch(runs):
    single_train, single_val = batch_records(Path(f"{runs['single']}.rank0"))
    rank0_train, rank0_val = batch_records(Path(f"{runs['ddp']}.rank0"))
    rank1_train, _ = batch_records(Path(f"{runs['ddp']}.rank1"))
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
    single_train, _ = batch_records(Path(f"{runs['single']}.rank0"))
    rank0_train, _ = batch_records(Path(f"{runs['ddp']}.rank0"))
    rank1_train, _ = batch_records(Path(f"{runs['ddp']}.rank1"))
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


def test_ddp_resumes_exactly_after_one_rank_is_stopped(work, runs, small_data_dir):
    """SIGTERM to rank 1 only: both ranks stop at the same step, rank 0 saves, and the resumed
    run reproduces the uninterrupted DDP run bit for bit."""
    run_dir = work / "killed_run"
    record = work / "killed"
    stopped = train_cli(
        *DDP,
        *batch_recorder(record),
        "trainer=ddp_sim",
        f"data.batch_size={GLOBAL_BATCH // 2}",
        f"paths.log_dir={work / 'outputs'}",
        *signal_at(2, "SIGTERM", rank=1),
        run_dir=run_dir,
        data_dir=small_data_dir,
    )
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3  # the step in flight was finished on both ranks
    # The saved config holds the rest (trainer=ddp_sim, the steps): only where, and the disarmed
    # kill.
    resumed = train_cli(DISARM_SIGNAL, resume=run_dir, data_dir=small_data_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        reference, _ = batch_records(Path(f"{runs['ddp']}.rank{rank}"))
        again, _ = batch_records(Path(f"{record}.rank{rank}"))
        assert again == reference, f"rank {rank} differs after resume"
    ref_dir = runs["ddp_runs"][0]
    a = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
