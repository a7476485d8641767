"""Every logged figure means what its name says, at the step it names (issue 15)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from parrot_lm.optim.schedules import warmup_cosine
from parrot_lm.training import flops
from tests.helpers import QUIET, SHORT_SAMPLES, TINY_DATA, TINY_MODEL, train_cli
from tests.helpers import fit as fit_config


def fit(tmp_path, *overrides: str) -> float | None:
    """The tiny model on the small stories, in this process; returns run()'s value."""
    return fit_config(tmp_path, *TINY_MODEL, *TINY_DATA, *QUIET, *SHORT_SAMPLES, *overrides)


def csv_rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def logged(rows, name: str) -> dict[int, float]:
    return {int(float(r["step"])): float(r[name]) for r in rows if r.get(name) not in (None, "")}


# -- learning-rate schedule past its end -----------------------------------------------------
@pytest.mark.parametrize(
    ("warmup", "total"),
    [(10, 5), (10, 10), (10, 40), (0, 40)],
    ids=["warmup-longer-than-schedule", "warmup-equals-schedule", "cosine", "no-warmup"],
)
def test_an_extended_run_keeps_the_lr_where_the_schedule_ended(warmup, total):
    f = lambda s: warmup_cosine(s, warmup, total, min_lr_ratio=0.1)  # noqa: E731
    inside = [f(s) for s in range(total + 1)]
    # Within the schedule: warmup rises linearly, the cosine never rises.
    for s in range(1, total + 1):
        if s < warmup:
            assert inside[s] == pytest.approx((s + 1) / warmup)
        elif s > warmup:
            assert inside[s] <= inside[s - 1] + 1e-12
    # Past it: constant at the value of step `total`, never above anything it reached.
    end = inside[total]
    assert all(f(s) == end for s in range(total, total + 5 * total + warmup + 3))
    assert end <= max(inside)
    if warmup <= total:
        assert end == pytest.approx(0.1)


# -- the peak MFU is measured against ------------------------------------------------------
def test_mfu_peak_is_cached_and_never_lowered_by_a_busy_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("PARROT_CACHE_DIR", str(tmp_path))
    measured = iter([50e9, 20e9, 70e9])
    monkeypatch.setattr(flops, "measure_peak_flops", lambda *a, **k: next(measured))
    first, busy, idle = (flops.peak_flops("cpu") for _ in range(3))
    assert first.flops == 50e9 and busy.flops == 50e9 and idle.flops == 70e9
    assert "measured" in first.source and "threads" in first.source


def test_mfu_peak_on_a_known_gpu_is_its_datasheet(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    monkeypatch.setattr(flops, "measure_peak_flops", lambda *a, **k: pytest.fail("measured"))
    peak = flops.peak_flops("cuda", torch.bfloat16)
    assert peak.flops == 989e12 and peak.source == "datasheet NVIDIA H200 bfloat16"


# -- train/loss under gradient accumulation ------------------------------------------------
def test_train_loss_is_the_mean_over_the_micro_batches_of_the_step(tmp_path):
    """Same 8 windows per step: one batch of 8, or 4 micro-batches of 2."""
    common = ["trainer.max_steps=2", "val_every_n_steps=2", "trainer.log_every_n_steps=1"]
    common += ["logger=csv", "+callbacks.recorder._target_=tests.helpers.callbacks.LossRecorder"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    fit(whole, *common, f"+callbacks.recorder.path={whole}.losses")
    fit(
        split,
        *common,
        "data.batch_size=2",
        "trainer.accumulate_grad_batches=4",
        f"+callbacks.recorder.path={split}.losses",
    )
    # Lightning hands callbacks each micro-batch's loss divided by accumulate_grad_batches.
    micro = [4 * float.fromhex(line.split()[3]) for line in open(f"{split}.losses")][:4]
    assert len(set(micro)) > 1  # the micro-batches differ, so the last one is not the mean
    split_curve = logged(csv_rows(split / "run"), "train/loss")
    whole_curve = logged(csv_rows(whole / "run"), "train/loss")
    split_loss, whole_loss = split_curve[min(split_curve)], whole_curve[min(whole_curve)]
    assert split_loss == pytest.approx(sum(micro) / 4, abs=1e-6)
    assert split_loss == pytest.approx(whole_loss, abs=1e-5)
    assert split_loss != pytest.approx(micro[-1], abs=1e-6)


# -- validation: the whole split, at the last step, under an honest name ---------------------
def test_every_run_ends_with_a_validation_at_its_last_step(tmp_path):
    returned = fit(
        tmp_path, "trainer.max_steps=25", "val_every_n_steps=10", "logger=[tensorboard,csv]"
    )
    val = logged(csv_rows(tmp_path / "run"), "val/loss")
    assert sorted(val) == [0, 10, 20, 25]
    assert returned == pytest.approx(val[25], abs=1e-6)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 25 and ckpt["tokens_seen"] == 25 * 8 * 32
    # The report reads steps and tokens from the checkpoint, not the last logged point
    # (train/tokens was last logged at step 19 with log_every_n_steps=10).
    from parrot_lm.report.build import build_report

    (job,) = build_report([str(tmp_path / "run")]).jobs
    assert (job.steps, job.tokens) == (25, 25 * 8 * 32)
    assert job.final_val_loss == pytest.approx(returned, abs=1e-6)


def test_a_limited_validation_is_logged_as_partial(tmp_path):
    returned = fit(
        tmp_path, "trainer.max_steps=10", "val_every_n_steps=10", "trainer.limit_val_batches=1"
    )
    rows = csv_rows_or_none(tmp_path)
    assert rows is None  # logger=tensorboard by default: read the events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/loss_partial", "val/ppl_partial"} <= tags and "val/loss" not in tags
    last = events.Scalars("val/loss_partial")[-1]
    assert last.step == 10 and last.value == pytest.approx(returned, abs=1e-6)
    assert math.isfinite(returned)


def csv_rows_or_none(tmp_path):
    path = tmp_path / "run" / "csv" / "metrics.csv"
    return csv_rows(tmp_path / "run") if path.is_file() else None


# -- the same numbers in every logger, and across a resume ----------------------------------
def tensorboard_scalars(run_dir, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    return {e.step: e.value for e in events.Reload().Scalars(tag)}


def test_tensorboard_and_csv_log_the_same_numbers_and_keep_them_across_a_resume(tmp_path):
    run_dir = tmp_path / "run"
    common = [
        *TINY_MODEL,
        *TINY_DATA,
        *QUIET,
        *SHORT_SAMPLES,
        "logger=[tensorboard,csv]",
        "trainer.log_every_n_steps=1",
        "val_every_n_steps=4",
        "optim.warmup_steps=2",
    ]
    first = train_cli(*common, "trainer.max_steps=6", run_dir=run_dir, data_dir=tmp_path / "data")
    assert first.returncode == 0, first.stderr[-2000:]
    before = logged(csv_rows(run_dir), "train/loss")
    assert sorted(before) == list(range(6))
    resumed = train_cli("trainer.max_steps=10", resume=run_dir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = csv_rows(run_dir)
    train, val = logged(rows, "train/loss"), logged(rows, "val/loss")
    assert sorted(train) == list(range(10))  # the first run's rows are still there
    assert all(train[s] == before[s] for s in before)
    assert sorted(val) == [0, 4, 6, 8, 10]  # every run ends with a validation at its last step
    for tag, from_csv in (("train/loss", train), ("val/loss", val)):
        from_tb = tensorboard_scalars(run_dir, tag)
        assert from_tb.keys() == from_csv.keys()
        assert all(from_tb[s] == pytest.approx(from_csv[s], rel=1e-6) for s in from_csv)
