"""What `python train.py` prints: no Lightning noise (accelerators it did not find, the litlogger
tip, a model summary of zero FLOPs, epoch bars of a run that trains by steps), ParrotLM's step
line (step/max_steps, loss, tokens/s, ETA), and at the end where the run's files are and the
exact commands that come next."""

from __future__ import annotations

import re

import pytest

from tests.helpers.config import SHORT_SAMPLES, SMALL_CORPUS, TINY_MODEL
from tests.helpers.training import train_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 12
# Lines a CPU run printed before ParrotLM filtered or replaced them.
NOISE = (
    "GPU available",
    "TPU available",
    "HPU available",
    "litlogger",
    "Total FLOPs",
    "Epoch 0/",
    "Seed set to",
    "`Trainer.fit` stopped",
)


def _console(*overrides: str, run_dir, data_dir) -> tuple[str, str]:
    """The run's stdout (its printed lines) and stdout + stderr (everything it showed)."""
    proc = train_cli(
        *TINY_MODEL,
        *SMALL_CORPUS,
        *SHORT_SAMPLES,
        "data.batch_size=8",
        "sample.max_new_tokens=0",
        *overrides,
        run_dir=run_dir,
        data_dir=data_dir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stdout + proc.stderr


def test_a_run_prints_its_progress_and_next_commands_without_lightning_noise(
    tmp_path, small_data_dir
):
    run = tmp_path / "run"
    printed, out = _console(
        f"trainer.max_steps={STEPS}",
        "val_every_n_steps=6",
        "trainer.log_every_n_steps=2",
        run_dir=run,
        data_dir=small_data_dir,
    )
    for noise in NOISE:
        assert noise not in out, noise
    # Lightning's own "INFO: ..." handler printed each of its lines a second time.
    assert not [line for line in out.splitlines() if line.startswith("INFO: ")]

    # Not a terminal: one progress line every ~5% of the run, the last at max_steps.
    progress = [line for line in out.splitlines() if re.match(rf"step \d+/{STEPS} \|", line)]
    assert len(progress) >= STEPS // 2, out
    last = progress[-1]
    assert re.fullmatch(
        rf"step {STEPS}/{STEPS} \| loss \d+\.\d{{3}} \| val \d+\.\d{{3}} \| [\d,]+ tokens/s"
        r" \| \d+:\d\d:\d\d \| ETA 0:00:00",
        last,
    ), last

    # The end of the run: where things are and what to type next.
    tail = printed[printed.index("Run dir:     ") :]
    assert f"Checkpoint:  {run / 'checkpoints' / 'last.ckpt'}" in tail
    assert f"tensorboard --logdir {run / 'tensorboard'}" in tail
    assert f"python scripts/evaluate.py ckpt={run}" in tail
    assert f"python scripts/generate.py ckpt={run} " in tail
    assert f"python scripts/chat.py outputs_dir={run}" in tail
    assert f"python train.py resume={run} trainer.max_steps={2 * STEPS}" in tail
    assert f"Best:        {run / 'checkpoints' / 'best.ckpt'}" in tail  # by val loss
    assert len(tail.splitlines()) <= 9


def test_no_progress_line_when_switched_off(tmp_path, small_data_dir):
    _, out = _console(
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=1",
        "logger=none",
        run_dir=tmp_path / "run",
        data_dir=small_data_dir,
    )
    assert not re.search(r"^step \d+/2 \|", out, re.MULTILINE)
    assert "Final val/loss_partial" in out
    assert "TensorBoard:" not in out  # logger=none: no events to point at
    assert "Train more:  python train.py resume=" in out


def test_help_lists_hydras_groups_and_the_config_with_overrides():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from parrot_lm.training.cli import config_groups
    from tests.helpers.cli import run_cli
    from tests.helpers.config import CONF_DIR, ROOT

    proc = run_cli([str(ROOT / "train.py"), "--help", "model.d_model=48"])
    assert proc.returncode == 0, proc.stderr
    assert "model: deep_narrow, gpt2_small, tiny" in proc.stdout
    assert "  d_model: 48" in proc.stdout  # the config, with the command line's overrides
    # The same groups and options as Hydra's own --help lists (its app groups: not hydra/*).
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        hydras = {
            group: sorted(hydra.config_loader.get_group_options(group))
            for group in hydra.list_all_config_groups()
            if group.split("/")[0] != "hydra"
        }
    assert config_groups() == hydras
