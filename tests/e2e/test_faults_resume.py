"""Faults and bad input around the checkpoints of a finished run (a resume from a corrupt or
changed run, another vocabulary): each ends in one sentence and a non-zero exit (or a warned
fallback), and no file that existed before is lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import FAULTS, assert_user_error, output, train_cli, tree_sha256
from tests.helpers.records import checkpoint_hashes

# Scheduling only (tests/conftest.py hands the longest files out first):
# two 10-step runs and eight resumes of them.
SCHEDULE_SECONDS = 110


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed 10-step run (checkpoints at 5 and 10) that the tests below abuse; its data
    is in `data` next to it."""
    root = tmp_path_factory.mktemp("faults")
    proc = train_cli(*FAULTS, "trainer.max_steps=10", run_dir=root / "done", data_dir=root / "data")
    assert proc.returncode == 0, output(proc)[-3000:]
    return root


def test_corrupt_last_falls_back_to_previous_good(finished_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(finished_run / "done", run)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint at all")
    (run / "checkpoints" / "step0000010.ckpt").write_bytes(b"PK\x03\x04 truncated")
    proc = train_cli(*FAULTS, "trainer.max_steps=12", resume=run, data_dir=finished_run / "data")
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "unreadable or corrupt" in output(proc) and "Falling back" in output(proc)
    assert "step0000005.ckpt (step 5)" in output(proc)


def test_no_good_checkpoint_is_one_sentence(finished_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(finished_run / "done", run)
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    before = checkpoint_hashes(run)
    proc = train_cli(*FAULTS, resume=run, data_dir=finished_run / "data")
    assert_user_error(proc, "No loadable checkpoint")
    assert checkpoint_hashes(run) == before


def test_resume_with_changed_model_shape_is_refused(finished_run):
    run = finished_run / "done"
    before = checkpoint_hashes(run)
    proc = train_cli(
        *FAULTS,
        "model.d_model=64",
        "trainer.max_steps=12",
        resume=run,
        data_dir=finished_run / "data",
    )
    assert_user_error(proc, "Cannot change model.d_model when resuming (the run has 32")
    assert checkpoint_hashes(run) == before


def test_resume_may_extend_max_steps_and_keeps_the_schedule(finished_run, tmp_path):
    run = tmp_path / "longer"
    shutil.copytree(finished_run / "done", run)
    proc = train_cli(*FAULTS, "trainer.max_steps=14", resume=run, data_dir=finished_run / "data")
    assert proc.returncode == 0, output(proc)[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 14
    assert ckpt["hyper_parameters"]["total_steps"] == 10  # the schedule the run started with
    lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(3e-3 * 0.1)  # stays at the floor past the schedule's end


def test_checkpoint_of_another_vocab_is_refused(finished_run, tmp_path):
    ckpt = finished_run / "done" / "checkpoints" / "last.ckpt"
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    proc = train_cli(
        *FAULTS,
        "data.tokenizer.vocab_size=400",
        f"ckpt_path={ckpt}",
        run_dir=tmp_path / "other",
        data_dir=tmp_path / "data",
    )
    assert_user_error(
        proc, "has model.vocab_size=300, but this run's config has model.vocab_size=400"
    )
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before


def test_resume_below_the_reached_step_is_refused_and_changes_nothing(finished_run):
    run = finished_run / "done"
    before = tree_sha256(run)
    proc = train_cli(*FAULTS, "trainer.max_steps=7", resume=run, data_dir=finished_run / "data")
    assert_user_error(proc, "trainer.max_steps=7 is below the step this run has reached (10); ")
    assert tree_sha256(run) == before


def test_resume_of_a_finished_run_trains_and_writes_nothing(finished_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(finished_run / "done", run)
    kept = lambda tree: {k: v for k, v in tree.items() if not k.startswith((".hydra", "train.log"))}  # noqa: E731
    before = kept(tree_sha256(run))
    proc = train_cli(*FAULTS, "trainer.max_steps=10", resume=run, data_dir=finished_run / "data")
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "already at step 10 = trainer.max_steps: nothing to train" in output(proc)
    assert kept(tree_sha256(run)) == before  # the command's record and log are the only change


def logged_steps(run: Path) -> dict[str, list[int]]:
    """The steps of each metric in the run's metrics.csv and TensorBoard events."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = {}
    for key in ("val/loss_partial", "train/loss"):
        steps[f"csv {key}"] = sorted(int(r["step"]) for r in rows if r.get(key))
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        steps[f"tb {key}"] = sorted({e.step for e in events.Scalars(key)})
    return steps


def test_a_resume_from_a_step_checkpoint_keeps_the_validation_at_its_step(finished_run, tmp_path):
    # step0000005.ckpt is saved at the end of step 5's batch, before step 5's validation, which
    # the resumed run does not repeat: the loggers used to drop the point it had logged.
    run = tmp_path / "logged"
    loggers = ["logger=[tensorboard,csv]", "trainer.log_every_n_steps=1"]
    data = finished_run / "data"
    proc = train_cli(*FAULTS, *loggers, "trainer.max_steps=10", run_dir=run, data_dir=data)
    assert proc.returncode == 0, output(proc)[-3000:]
    before = logged_steps(run)
    assert before["csv val/loss_partial"] == [0, 5, 10]
    proc = train_cli(
        *FAULTS, *loggers, "ckpt_path=step0000005.ckpt", "trainer.max_steps=10", resume=run,
        data_dir=data,
    )  # fmt: skip
    assert proc.returncode == 0, output(proc)[-3000:]
    assert logged_steps(run) == before
    # A rewind: the newer checkpoints it overwrites are named first.
    assert "before this run's newer checkpoints: step0000010.ckpt and last.ckpt" in output(proc)


def test_a_run_ending_off_the_log_cadence_logs_its_own_last_step(finished_run, tmp_path):
    # Lightning hands the loggers the metrics of the step a run stops at, log step or not;
    # those used to be the last logged step's values (here step 5's) under step 7's number.
    run = tmp_path / "seven"
    proc = train_cli(
        *FAULTS, "logger=csv", "trainer.log_every_n_steps=5", "trainer.max_steps=7",
        run_dir=run, data_dir=finished_run / "data",
    )  # fmt: skip
    assert proc.returncode == 0, output(proc)[-3000:]
    import csv

    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/tokens")]
    tokens_per_step = 8 * 32  # data.batch_size x model.context_length
    assert [(int(r["step"]), float(r["train/tokens"])) for r in rows] == [
        (4, 5 * tokens_per_step),
        (6, 7 * tokens_per_step),
    ]
    assert rows[0]["train/loss"] != rows[1]["train/loss"]
