"""Shared fixtures, the layer markers, and the order the files are handed to the xdist workers.

Tests build their own tiny data under the session's temp dir and never use the network; the
helpers they share are in tests/helpers/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    QUIET,
    ROOT,
    TINY_DATA,
    TINY_MODEL,
    TINY_RUN_STEPS,
    build_once,
    train_cli,
)

LAYERS = ("unit", "integration", "e2e")
# Rough seconds per test of each layer on a busy 2-core machine, to hand the longest files out
# first; a file whose tests are much longer says so with a module-level SCHEDULE_SECONDS (its
# measured total). Scheduling only: nothing is timed.
SECONDS_PER_TEST = {"unit": 0.3, "integration": 3.0, "e2e": 10.0}


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread per process (unless OMP_NUM_THREADS says otherwise), here and in every
    subprocess a test starts (they inherit the variable): the tiny models run no slower on one,
    and with one test worker per core more threads only spin against each other (a 105-step
    resume reference took 27 s with torch's default on a busy 2-core machine, 10 s with one)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    threads = os.environ["OMP_NUM_THREADS"]
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def _layer(item: pytest.Item) -> str | None:
    parts = Path(item.path).relative_to(ROOT / "tests").parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its layer (its directory), and order the files longest first: with
    `--dist loadfile --no-loadscope-reorder` (make test) the workers then take the long ones
    first and the short ones fill the gaps at the end."""
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        layer = _layer(item)
        if layer is not None:
            item.add_marker(getattr(pytest.mark, layer))
        files.setdefault(Path(item.path), []).append(item)

    def expected_seconds(path: Path) -> float:
        tests = files[path]
        declared = getattr(tests[0].module, "SCHEDULE_SECONDS", None)
        if declared is not None:
            return float(declared)
        return len(tests) * SECONDS_PER_TEST.get(_layer(tests[0]) or "integration", 3.0)

    order = sorted(files, key=expected_seconds, reverse=True)  # stable: ties keep their order
    items[:] = [item for path in order for item in files[path]]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return TINY_MODEL + TINY_DATA + ["logger=none", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """`paths.data_dir` holding the SMALL_CORPUS stories, prepared once per session (for every
    worker)."""
    from parrot_lm.data.prepare import prepare_corpus

    def prepare(root: Path) -> None:
        prepare_corpus(
            root / "stories",
            {"kind": "stories", "num_documents": 40, "seed": 0},
            {"kind": "bpe", "vocab_size": 300},
            0.05,
        )

    return build_once(tmp_path_factory, "small_data", prepare)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """A run dir trained for a few steps by `train.py` (checkpoint, tokenizer, run config) and
    the stdout + stderr of that run; shared by the evaluate/generate tests of every worker.
    Read-only: copy it to change it."""

    def train(root: Path) -> None:
        proc = train_cli(
            *TINY_MODEL,
            *TINY_DATA,
            *QUIET,
            "logger=none",
            f"trainer.max_steps={TINY_RUN_STEPS}",
            f"val_every_n_steps={TINY_RUN_STEPS}",
            f"paths.output_dir={root / 'run'}",
            data_dir=root / "data",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        (root / "log.txt").write_text(proc.stdout + proc.stderr)

    root = build_once(tmp_path_factory, "tiny_run", train)
    return root / "run", (root / "log.txt").read_text()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models generate fastest on one thread, and on a loaded 2-core machine (test
    workers side by side) more threads only fight; restored for the next test file. The chat
    test files use it for all their tests (`pytestmark = pytest.mark.usefixtures(...)`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
