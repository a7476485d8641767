"""Entry points as a user runs them (a subprocess, with a timeout sized to its work) or, where
the interpreter boundary is not what a test is about, their `main(argv)` in this process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.helpers.config import ROOT

# Seconds for one Python process to import torch + Lightning and compose its config (6-8 s on
# an idle 2-core machine), and for one tiny training step with its share of validation and
# logging (about 0.1 s): both generous. PARROT_TEST_TIMEOUT_FACTOR scales every limit (a
# slower or busier machine); the limits only stop a hung process, they time nothing.
STARTUP_S = 30.0
STEP_S = 1.0
FACTOR = float(os.environ.get("PARROT_TEST_TIMEOUT_FACTOR", "3"))


def cli_timeout(steps: int = 0, jobs: int = 1, processes: int = 1) -> float:
    """A subprocess's time limit from its work: `jobs` runs one after the other, each of
    `processes` processes (DDP ranks share the cores) that start up and run `steps` steps
    (micro-batches: optimizer steps times gradient accumulation)."""
    return FACTOR * jobs * processes * (STARTUP_S + steps * STEP_S)


def run_cli(
    args: Sequence[str],
    cwd: Path = ROOT,
    *,
    steps: int = 0,
    jobs: int = 1,
    processes: int = 1,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run an entry point (`args` after `python`) as a user would, in a subprocess, and return
    the completed process. The time limit is `cli_timeout(steps, jobs, processes)` unless given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout if timeout is not None else cli_timeout(steps, jobs, processes),
    )


def run_main(
    main: Callable[[list[str]], object], argv: Sequence[str]
) -> subprocess.CompletedProcess:
    """`main(argv)` of an entry point in this process, as a CompletedProcess: its exit status
    (SystemExit's code, 0 on return, or the int it returns) and what it printed. Only for
    entry points that compose their config (no hydra.main: it would reconfigure logging here)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = main(list(argv))
            code = result if isinstance(result, int) else 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything a process printed, stdout then stderr."""
    return proc.stdout + proc.stderr


def assert_user_error(proc, fragment: str, code: int | None = 2) -> None:
    """One sentence on stderr, no traceback, the expected non-zero exit (None: any)."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (
        proc.stdout[-2000:] + proc.stderr[-2000:]
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert fragment in proc.stderr, proc.stderr[-3000:]


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
