"""Faults and bad input around checkpoints: each ends in one sentence and a non-zero exit (or a
warned fallback), and no file that existed before is lost."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY_DATA, TINY_MODEL, assert_user_error, run_cli

BASE = [
    *TINY_MODEL,
    *TINY_DATA,
    "data.source.num_documents=60",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.limit_val_batches=1",
    "val_every_n_steps=5",
    "sample.max_new_tokens=0",
    "ckpt_every_n_steps=5",
    "optim.warmup_steps=2",
]


def train(tmp_path: Path, run: str, *overrides: str, resume: bool = False, data: str = "data"):
    where = f"resume={tmp_path / run}" if resume else f"hydra.run.dir={tmp_path / run}"
    return run_cli(
        ["train.py", where, f"paths.data_dir={tmp_path / data}", *BASE, *overrides], cwd=ROOT
    )


def output(proc) -> str:
    return proc.stdout + proc.stderr


def snapshot(run_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every checkpoint: to prove nothing was lost or rewritten."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run_dir / "checkpoints").glob("*.ckpt"))
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed 10-step run (checkpoints at 5 and 10) that the tests below abuse."""
    root = tmp_path_factory.mktemp("faults")
    proc = train(root, "done", "trainer.max_steps=10")
    assert proc.returncode == 0, output(proc)[-3000:]
    return root


@pytest.mark.parametrize("die_on_save, resumed_step", [(3, 5), (4, 10)])
def test_kill_while_writing_a_checkpoint(tmp_path, die_on_save, resumed_step):
    # Saves go step5, last(5), step10, last(10): die half-way through the 3rd or the 4th.
    proc = train(
        tmp_path,
        "run",
        "trainer.max_steps=20",
        "checkpoint_io._target_=tests.helpers.DyingCheckpointIO",
        f"+checkpoint_io.die_on_save={die_on_save}",
    )
    assert proc.returncode == -signal.SIGKILL
    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert list(ckpt_dir.glob(".*.tmp-*")), "the half-written file should be a temporary"
    last = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5

    # The resumed run keeps its saved config (the dying IO); disarm it.
    proc = train(
        tmp_path, "run", "trainer.max_steps=20", "+checkpoint_io.die_on_save=1000", resume=True
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    assert f"(step {resumed_step})" in output(proc)
    assert not list(ckpt_dir.glob(".*.tmp-*"))
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["global_step"] == 20


def test_corrupt_last_falls_back_to_previous_good(finished_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run / "done", run)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint at all")
    (run / "checkpoints" / "step0000010.ckpt").write_bytes(b"PK\x03\x04 truncated")
    proc = train(
        tmp_path, "copy", "trainer.max_steps=12", resume=True, data=str(finished_run / "data")
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "unreadable or corrupt" in output(proc) and "Falling back" in output(proc)
    assert "step0000005.ckpt (step 5)" in output(proc)


def test_no_good_checkpoint_is_one_sentence(finished_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run / "done", run)
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    before = snapshot(run)
    proc = train(tmp_path, "copy", resume=True, data=str(finished_run / "data"))
    assert_user_error(proc, "No loadable checkpoint")
    assert snapshot(run) == before


def test_missing_run_dir(tmp_path):
    proc = run_cli(["train.py", f"resume={tmp_path / 'nope'}"], cwd=ROOT)
    assert_user_error(proc, "does not exist")
    assert not (tmp_path / "nope").exists()


def test_resume_with_changed_model_shape_is_refused(finished_run):
    before = snapshot(finished_run / "done")
    proc = train(finished_run, "done", "model.d_model=64", "trainer.max_steps=12", resume=True)
    assert_user_error(proc, "Cannot change model.d_model when resuming (the run has 32")
    assert snapshot(finished_run / "done") == before


def test_resume_may_extend_max_steps_and_keeps_the_schedule(finished_run, tmp_path):
    import shutil

    shutil.copytree(finished_run / "done", tmp_path / "longer")
    proc = train(
        tmp_path, "longer", "trainer.max_steps=14", resume=True, data=str(finished_run / "data")
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    ckpt = torch.load(tmp_path / "longer" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 14
    assert ckpt["hyper_parameters"]["total_steps"] == 10  # the schedule the run started with
    lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(3e-3 * 0.1)  # stays at the floor past the schedule's end


def test_checkpoint_of_another_vocab_is_refused(finished_run, tmp_path):
    ckpt = finished_run / "done" / "checkpoints" / "last.ckpt"
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    proc = train(tmp_path, "other", "data.tokenizer.vocab_size=400", f"ckpt_path={ckpt}")
    assert_user_error(
        proc, "has model.vocab_size=300, but this run's config has model.vocab_size=400"
    )
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before


def test_foreign_file_as_checkpoint(tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    proc = train(tmp_path, "run", f"ckpt_path={foreign}")
    assert_user_error(proc, "is not a ParrotLM training checkpoint")


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    proc = train(
        tmp_path,
        "run",
        "trainer.max_steps=20",
        "+callbacks.poison._target_=tests.helpers.PoisonWeightsAt",
        "+callbacks.poison.step=7",
    )
    assert_user_error(proc, "The training loss became nan at step 7")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())


def test_nonfinite_loss_can_be_skipped(tmp_path):
    proc = train(
        tmp_path,
        "run",
        "trainer.max_steps=12",
        "nonfinite_loss=skip",
        "+callbacks.poison._target_=tests.helpers.PoisonWeightsAt",
        "+callbacks.poison.step=7",
        "+callbacks.poison.restore=true",
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "skipping this batch" in output(proc)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 12
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
