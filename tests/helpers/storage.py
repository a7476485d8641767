"""A place on disk this process cannot write to, for the refusals of a read-only target."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


@contextmanager
def read_only_place(place: Path, fill: Callable[[Path], T], size: str = "64m") -> Iterator[T]:
    """`fill(place)` run in the empty dir `place`, which is then made unwritable: chmod a-w for
    a normal user; for root, whom permissions do not stop (CI runs as root), a tmpfs of `size`
    remounted read-only (as tests/e2e/test_storage_faults.py does); skipped where neither
    works. Yields what `fill` returned."""
    place.mkdir()
    if os.geteuid() != 0:
        made = fill(place)
        dirs = [place, *(p for p in place.rglob("*") if p.is_dir())]
        for path in dirs:
            path.chmod(0o555)
        try:
            yield made
        finally:
            for path in dirs:
                path.chmod(0o755)  # so that pytest can remove it
        return
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(place)]
    mounted = subprocess.run(mount, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root but cannot mount a tmpfs here: {mounted.stderr.decode()[:80]}")
    try:
        made = fill(place)
        subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
        yield made
    finally:
        subprocess.run(["umount", "-l", str(place)], capture_output=True)


def copy_into(source: Path, name: str) -> Callable[[Path], Path]:
    """A `fill` for read_only_place: a copy of `source` as `<place>/<name>`."""
    return lambda place: Path(shutil.copytree(source, place / name))
