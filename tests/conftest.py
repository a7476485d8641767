"""Shared fixtures: tests build their own tiny data under tmp_path and never use the network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
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


def compose_train(tmp_path: Path, overrides: list[str] = ()) -> DictConfig:
    """Compose conf/train.yaml as `python train.py` would, with outputs redirected to tmp_path."""
    paths = [f"paths.output_dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=paths + list(overrides))


@pytest.fixture
def tiny_overrides() -> list[str]:
    return TINY_MODEL + TINY_DATA + ["logger=none", "trainer.enable_progress_bar=false"]


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict[str, str] | None = None):
    """Run an entry point as a user would, in a subprocess, and return the completed process."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_user_error(proc, fragment: str, code: int | None = 2) -> None:
    """One sentence on stderr, no traceback, the expected non-zero exit (None: any)."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (
        proc.stdout[-2000:] + proc.stderr[-2000:]
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert fragment in proc.stderr, proc.stderr[-3000:]


# 40 stories and a 300-token BPE: the corpus of the resume, DDP and sweep tests.
SMALL_CORPUS = ["data.source.num_documents=40", "data.tokenizer.vocab_size=300"]


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """`paths.data_dir` holding the SMALL_CORPUS stories, prepared once per session."""
    from parrot_lm.data.prepare import prepare_corpus

    root = tmp_path_factory.mktemp("small_data")
    prepare_corpus(
        root / "stories",
        {"kind": "stories", "num_documents": 40, "seed": 0},
        {"kind": "bpe", "vocab_size": 300},
        0.05,
    )
    return root


TINY_RUN_STEPS = 20


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """A run dir trained for a few steps by `train.py` (checkpoint, tokenizer, run config) and
    the stderr log of that run; shared by the evaluate/generate tests."""
    tmp = tmp_path_factory.mktemp("tiny_run")
    proc = run_cli(
        [
            "train.py",
            *TINY_MODEL,
            *TINY_DATA,
            "logger=none",
            "trainer.enable_progress_bar=false",
            f"trainer.max_steps={TINY_RUN_STEPS}",
            f"val_every_n_steps={TINY_RUN_STEPS}",
            "sample.max_new_tokens=0",
            f"paths.output_dir={tmp / 'run'}",
            f"paths.data_dir={tmp / 'data'}",
        ],
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run", proc.stdout + proc.stderr


def tree_sha256(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256) and every dir (-> "dir"): compare
    before and after a refused command to show it wrote, changed and removed nothing."""
    import hashlib

    tree = {}
    if not root.exists():
        return tree
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir() and not path.is_symlink():
            tree[rel] = "dir"
        elif path.is_file():
            tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree
