"""The installed console commands (`pip install -e .`) find their config from any directory, run
with a clean PYTHONPATH as a user's shell would."""

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import assert_user_error, cli_timeout

BIN = Path(sys.executable).parent


def run_installed(command: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run an installed console command with a clean PYTHONPATH, as a user would."""
    exe = BIN / command
    assert exe.exists(), f"{exe} missing: reinstall with `pip install -e .`"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HYDRA_FULL_ERROR"] = "0"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=cli_timeout()
    )


def test_installed_evaluate_finds_its_config_outside_the_repo(tmp_path):
    proc = run_installed("parrot-evaluate", [], cwd=tmp_path)
    assert_user_error(proc, "Set ckpt=... on the command line")
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one sentence


def test_installed_train_composes_outside_the_repo(tmp_path):
    proc = run_installed("parrot-train", ["--cfg", "job", "trainer.max_steps=3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max_steps: 3" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # --cfg job makes no run dir
