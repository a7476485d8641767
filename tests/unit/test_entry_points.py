"""Thin entry points: scripts import the package (no sys.path tricks), and every console command
is declared, installed and resolves to a callable (run from elsewhere:
tests/e2e/test_installed_commands.py)."""

import importlib
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

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
        "parrot-budget",
        "parrot-plan",
    }


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_command_resolves_to_a_callable(name):
    module_name, _, attr = SCRIPTS[name].partition(":")
    assert attr, SCRIPTS[name]
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), SCRIPTS[name]
    assert (BIN / name).exists(), f"{name} is not installed: reinstall with `pip install -e .`"
