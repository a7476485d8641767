"""Thin entry points: scripts import the package (no sys.path tricks) and the installed console
commands find their config from any directory."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_user_error

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SCRIPTS = dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
BIN = Path(sys.executable).parent


def test_no_entry_point_edits_sys_path():
    files = [ROOT / "train.py", *sorted((ROOT / "scripts").rglob("*.py"))]
    assert len(files) > 1
    offenders = [str(f.relative_to(ROOT)) for f in files if "sys.path" in f.read_text()]
    assert offenders == []


def test_every_console_command_is_declared():
    assert set(SCRIPTS) == {
        "parrot-train",
        "parrot-prepare",
        "parrot-download",
        "parrot-evaluate",
        "parrot-export",
        "parrot-generate",
        "parrot-chat",
        "parrot-report",
    }


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_command_resolves_to_a_callable(name):
    module_name, _, attr = SCRIPTS[name].partition(":")
    assert attr, SCRIPTS[name]
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), SCRIPTS[name]
    assert (BIN / name).exists(), f"{name} is not installed: reinstall with `pip install -e .`"


def run_installed(command: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run an installed console command with a clean PYTHONPATH, as a user would."""
    exe = BIN / command
    assert exe.exists(), f"{exe} missing: reinstall with `pip install -e .`"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HYDRA_FULL_ERROR"] = "0"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
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
