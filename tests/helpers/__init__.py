"""What the tests share, re-exported here: paths and the override lists (config), running entry
points as subprocesses or in-process (cli), the one training wrapper (training), artifacts made
once per session for all xdist workers (shared).

Imported from their modules: the test-only callbacks and the overrides that add them
(callbacks; Hydra imports them by dotted path, tests.helpers.callbacks.<Class>), reading
recorded runs (records), the resume references (resume), the chat server (chat), tiny random
run dirs (runs), the named experiments (experiments)."""

from tests.helpers.cli import (
    assert_user_error,
    cli_timeout,
    output,
    run_cli,
    run_main,
    tree_sha256,
)
from tests.helpers.config import (
    CONF_DIR,
    DDP,
    DDP_GLOBAL_BATCH,
    DDP_STEPS,
    FAULTS,
    QUIET,
    RESUME,
    RESUME_BATCH,
    ROOT,
    SHORT_SAMPLES,
    SMALL_CORPUS,
    SWEEP,
    TINY_DATA,
    TINY_MODEL,
    TINY_RUN_STEPS,
    compose_train,
)
from tests.helpers.shared import build_once, shared_root
from tests.helpers.training import fit, micro_batches, train_args, train_cli

__all__ = [
    "CONF_DIR",
    "DDP",
    "DDP_GLOBAL_BATCH",
    "DDP_STEPS",
    "FAULTS",
    "QUIET",
    "RESUME",
    "RESUME_BATCH",
    "ROOT",
    "SHORT_SAMPLES",
    "SMALL_CORPUS",
    "SWEEP",
    "TINY_DATA",
    "TINY_MODEL",
    "TINY_RUN_STEPS",
    "assert_user_error",
    "build_once",
    "cli_timeout",
    "compose_train",
    "fit",
    "micro_batches",
    "output",
    "run_cli",
    "run_main",
    "tree_sha256",
    "shared_root",
    "train_args",
    "train_cli",
]
