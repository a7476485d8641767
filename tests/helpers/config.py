"""Where things are, the override lists every test builds on, and Hydra's compose for tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"

# A model small enough that a CPU fit takes seconds.
TINY_MODEL = [
    "model.d_model=32",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.context_length=32",
]
# A small stories corpus: a few hundred documents and a 300-token BPE.
TINY_DATA = [
    "data.source.num_documents=300",
    "data.tokenizer.vocab_size=300",
    "data.batch_size=8",
]
# 40 stories and a 300-token BPE: the corpus of the resume, DDP, sweep and chat tests
# (prepared once per session: the `small_data_dir` fixture).
SMALL_CORPUS = ["data.source.num_documents=40", "data.tokenizer.vocab_size=300"]
# Steps of the session's `tiny_run` (tests/conftest.py), trained once by train.py.
TINY_RUN_STEPS = 20
# No progress bar, no model summary, no end-of-run sample: what a test does not look at.
QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "sample.max_new_tokens=0",
]
# The text sample logged after each validation: one token still runs the callback (its
# sampling, its TensorBoard text) at a sixtieth of the default's cost.
SHORT_SAMPLES = ["callbacks.text_samples.max_new_tokens=1"]

# The scenarios built on them. Faults: 60 stories, checkpoints and a short validation every 5
# steps (tests/e2e/test_faults*.py, tests/integration/test_nonfinite.py).
FAULTS = [
    *TINY_MODEL,
    *TINY_DATA,
    *QUIET,
    *SHORT_SAMPLES,
    "data.source.num_documents=60",
    "logger=none",
    "trainer.limit_val_batches=1",
    "val_every_n_steps=5",
    "ckpt_every_n_steps=5",
    "optim.warmup_steps=2",
]
# Exact resume: deterministic, with dropout so the RNG state matters, TensorBoard and every
# step logged (tests/e2e/test_resume_*.py).
RESUME_BATCH = 8
RESUME = [
    *TINY_MODEL,
    "model.dropout=0.1",
    *SMALL_CORPUS,
    *QUIET,
    *SHORT_SAMPLES,
    f"data.batch_size={RESUME_BATCH}",
    "trainer.deterministic=true",
    "trainer.limit_val_batches=2",
    "val_every_n_steps=5",
    "optim.warmup_steps=3",
    "trainer.log_every_n_steps=1",
]
# DDP on CPU (trainer=ddp_sim) against one process: 6 deterministic steps, validation at 0, 3
# and 6 (tests/e2e/test_distributed*.py).
DDP_GLOBAL_BATCH = 8
DDP_STEPS = 6
DDP = [
    *TINY_MODEL,
    *SMALL_CORPUS,
    *QUIET,
    *SHORT_SAMPLES,
    "logger=none",
    "trainer.deterministic=true",
    f"trainer.max_steps={DDP_STEPS}",
    "val_every_n_steps=3",
    "trainer.limit_val_batches=3",
    "optim.warmup_steps=2",
    "trainer.log_every_n_steps=1",
]
# Sweeps through Hydra's launchers and sweepers (tests/e2e/test_sweeps.py).
SWEEP = [*TINY_MODEL, *SMALL_CORPUS, *QUIET, "data.batch_size=8"]


def compose_train(tmp_path: Path, overrides: list[str] = ()) -> DictConfig:
    """Compose conf/train.yaml as `python train.py` would, with outputs redirected to tmp_path."""
    paths = [f"paths.output_dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=paths + list(overrides))
