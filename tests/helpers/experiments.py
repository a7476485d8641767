"""The named experiments (conf/experiment) and the overrides that shrink any of them to a few
CPU steps on tiny stories."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.config import CONF_DIR, TINY_DATA, TINY_MODEL, compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def compose_experiment(tmp_path: Path, name: str, *overrides: str):
    return compose_train(tmp_path, [f"experiment={name}", *overrides])


SMOKE_STEPS = 3
SMOKE = [
    *TINY_MODEL,
    *TINY_DATA,
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "sample.max_new_tokens=0",
    "callbacks.text_samples.max_new_tokens=1",  # the samples at each validation: half the time
    "trainer=cpu",
    "trainer.precision=32-true",
    f"trainer.max_steps={SMOKE_STEPS}",
    "trainer.accumulate_grad_batches=1",
    "val_every_n_steps=2",
    "trainer.limit_val_batches=2",
    "data.num_workers=0",
    # c4_char sets data.source.limit, which the command-line `data=stories` keeps (an
    # experiment's keys merge over whichever data option is chosen); pin it to the same value
    # for every job so all of them share one prepared corpus (stories ignore the limit).
    "++data.source.limit=null",
]


def smoke_overrides(tmp_path: Path) -> list[str]:
    return ["data=stories", *SMOKE, f"paths.data_dir={tmp_path / 'data'}"]
