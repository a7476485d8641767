"""Expensive artifacts (prepared corpora, trained runs, reference trainings) made once per test
session, also across pytest-xdist workers: the first worker to ask builds it under a file lock,
the others wait for it and reuse it (pytest-xdist's "Making session-scoped fixtures execute only
once"). Callers treat them as read-only: copy one to change it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp dir all workers of this session share (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """`<shared root>/<name>`, made by `build(path)` (into an empty dir) the first time any
    worker asks. A build that fails leaves no mark: the next caller tries again (and fails
    with its own error)."""
    from filelock import FileLock

    root = shared_root(tmp_path_factory)
    path, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            done.touch()
    return path
