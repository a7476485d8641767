"""The console's parts: which Lightning lines are dropped (and which are not), the end-of-run
lines, and the progress line's fields."""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace

from parrot_lm.runs.run_dir import RunDir, scratch_dir
from parrot_lm.training.callbacks.progress import StepProgress
from parrot_lm.training.console import DropLightningNoise, next_steps


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(
        "lightning.pytorch.utilities.rank_zero", level, "", 0, message, (), None
    )


def test_only_the_noise_lines_are_dropped():
    keep = DropLightningNoise().filter
    assert not keep(_record("GPU available: False, used: False"))
    assert not keep(_record("TPU available: False, using: 0 TPU cores"))
    assert not keep(_record("💡 Tip: For seamless cloud logging ... litlogger"))
    assert keep(_record("Restoring states from the checkpoint path at x.ckpt"))
    assert keep(_record("GPU available but not used.", logging.WARNING))  # not the info line


def test_next_steps_name_what_exists(tmp_path):
    run = RunDir(tmp_path / "run")
    text = next_steps(run, 100)
    assert "Checkpoint:" not in text and "Evaluate:" not in text and "TensorBoard" not in text
    assert text.endswith(f"python train.py resume={run.path} trainer.max_steps=200")
    run.last_checkpoint.parent.mkdir(parents=True)
    run.last_checkpoint.write_bytes(b"")
    run.tensorboard.mkdir()
    text = next_steps(run, 100, best=run.last_checkpoint)
    assert f"Checkpoint:  {run.last_checkpoint}" in text
    assert f"Best:        {run.last_checkpoint}" in text
    assert f"tensorboard --logdir {run.tensorboard}" in text
    assert f"python scripts/evaluate.py ckpt={run.path}" in text
    assert len(text.splitlines()) == 8


def test_a_fast_dev_runs_temporary_dir_gets_one_line_and_no_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where scratch_dir makes its dir
    for purpose, job in (("fdr", ""), ("fdr-sweep", "0")):  # a run, a sweep's job
        run = RunDir(Path(scratch_dir(purpose)) / job)
        run.last_checkpoint.parent.mkdir(parents=True)
        run.last_checkpoint.write_bytes(b"")
        assert next_steps(run, 100, best=run.last_checkpoint) == (
            f"Run dir:     {run.path} is temporary (a fast dev run keeps nothing) and is removed "
            "as this process exits, so there is nothing to evaluate or resume."
        )
    # The same kind of name outside the temp dir is an ordinary run dir.
    run = RunDir(tmp_path.parent / f"parrot-scratch-fdr-{tmp_path.name}")
    assert "Train more:  python train.py resume=" in next_steps(run, 100)


def test_progress_line_fields_and_eta(monkeypatch):
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(
        "parrot_lm.training.callbacks.progress.time.perf_counter", lambda: next(clock)
    )
    metrics = {"train/loss": 4.91034, "train/tokens_per_sec": 2997.4, "val/loss": 4.8234}
    trainer = SimpleNamespace(global_step=10, max_steps=30, progress_bar_metrics=metrics)
    bar = StepProgress(io.StringIO())
    bar.on_train_start(trainer, None)  # at t=100, step 10
    trainer.global_step = 20  # 10 steps in 10 s: 10 to go take 10 s
    assert bar.line(trainer) == (
        "step 20/30 | loss 4.910 | val 4.823 | 2,997 tokens/s | 0:00:10 | ETA 0:00:10"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_redrawn_and_left_before_validation():
    trainer = SimpleNamespace(global_step=0, max_steps=2, progress_bar_metrics={})
    stream = _Terminal()
    bar = StepProgress(stream)
    bar.on_train_start(trainer, None)
    for step in (1, 2):
        trainer.global_step = step
        bar.on_train_batch_end(trainer)
    bar.on_validation_start(trainer, None)  # LitLM's validation line starts on a new line
    text = stream.getvalue()
    assert text.startswith("\rstep 1/2") and "\rstep 2/2" in text and text.endswith("\n")
    assert text.count("\n") == 1
