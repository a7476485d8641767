"""Full and read-only disks under the commands a user runs: one sentence naming the path (no
space, read-only), exit 2, no traceback, no temporary left behind, and every file that was
there before byte-identical after (core/io.py is the one writer; core/cli.py words the rest).

The disks are small tmpfs mounts, which needs root (CI runs as root); elsewhere these tests
skip and say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parrot_lm.data.cli import main as prepare_main
from parrot_lm.evaluation.cli import main as evaluate_main
from parrot_lm.export.cli import main as export_main
from tests.helpers import (
    FAULTS,
    ROOT,
    SMALL_CORPUS,
    assert_user_error,
    output,
    run_main,
    train_cli,
    tree_sha256,
)
from tests.helpers.cli import cli_timeout

# Scheduling only (tests/conftest.py hands the longest files out first).
SCHEDULE_SECONDS = 40

STORIES = ["data.source.num_documents=60", "data.tokenizer.vocab_size=300"]
TRAIN = [*FAULTS, *SMALL_CORPUS]  # on the session's small_data_dir


def leftovers(root: Path) -> list[str]:
    """Temporaries of ParrotLM's writers (`.name.tmp-<pid>`, `.name.old-<pid>`) under `root`."""
    return [str(p) for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


@pytest.fixture
def mount(tmp_path):
    """mount(name, size, read_only=False) -> a fresh tmpfs of `size` (e.g. "300k") at
    tmp_path/name; unmounted after the test."""
    mounted: list[Path] = []

    def make(name: str, size: str, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here (uid {os.getuid()}: {proc.stderr.strip()[:80]}); "
                "these disk tests need root, as CI has"
            )
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    shutil.copytree(tiny_run[0], tmp_path / "run")
    return tmp_path / "run"


# ---- a full disk -------------------------------------------------------------------------------


def test_training_on_a_full_disk_stops_with_a_sentence_and_no_temporary(mount, small_data_dir):
    disk = mount("disk", "300k")  # room for the run config and tokenizer, not a checkpoint
    corpus = small_data_dir / "stories"  # (beside it, the empty lock file preparers share)
    before = tree_sha256(corpus)
    proc = train_cli(*TRAIN, "trainer.max_steps=5", run_dir=disk / "run", data_dir=small_data_dir)
    assert_user_error(proc, "(No space left on device); free some disk space")
    assert str(disk / "run" / "checkpoints") in proc.stderr
    assert leftovers(disk) == []
    assert tree_sha256(corpus) == before


def test_a_run_dir_on_a_disk_with_no_space_at_all_is_refused_before_anything(mount, small_data_dir):
    """Hydra writes its record before ParrotLM runs; a disk without one free block is refused
    before that."""
    disk = mount("disk", "64k")
    (disk / "filler").write_bytes(b"x" * 65536)
    proc = train_cli(*TRAIN, "trainer.max_steps=5", run_dir=disk / "run", data_dir=small_data_dir)
    assert_user_error(proc, f"Cannot write {disk / 'run'} (No space left on device)")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_forced_rebuild_on_a_full_disk_keeps_the_old_corpus(mount, tmp_path, monkeypatch):
    disk = mount("disk", "400k")
    args = [f"paths.data_dir={disk}", *STORIES]
    assert run_main(prepare_main, args).returncode == 0
    before = tree_sha256(disk)
    monkeypatch.chdir(tmp_path)
    proc = run_main(prepare_main, [f"paths.data_dir={disk}", "data.source.num_documents=4000",
                                   "data.tokenizer.vocab_size=300", "--force"])  # fmt: skip
    assert_user_error(proc, "(No space left on device); free some disk space")
    assert tree_sha256(disk) == before  # meta.json, shards and tokenizer as they were
    assert leftovers(disk) == []
    assert run_main(prepare_main, [*args, "--verify"]).returncode == 0


def test_a_first_prepare_on_a_full_disk_leaves_no_dirs(mount):
    disk = mount("disk", "64k")
    proc = run_main(
        prepare_main, [f"paths.data_dir={disk / 'a' / 'b'}", "data.source.num_documents=2000"]
    )
    assert_user_error(proc, "(No space left on device)")
    assert list(disk.iterdir()) == []


def test_an_evaluation_result_on_a_full_disk(mount, run_copy):
    disk = mount("disk", "4k")
    (disk / "filler").write_bytes(b"x" * 4096)
    before = tree_sha256(run_copy.parent)
    proc = run_main(evaluate_main, [f"ckpt={run_copy}", f"output={disk / 'result.json'}"])
    assert_user_error(proc, f"Cannot write {disk / 'result.json'} (No space left on device)")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    assert tree_sha256(run_copy.parent) == before


def test_an_export_on_a_full_disk_is_one_sentence(mount, run_copy):
    """safetensors writes with its own (Rust) writer; its "os error 28" is worded too."""
    disk = mount("disk", "64k")
    before = tree_sha256(run_copy.parent)
    proc = run_main(
        export_main, [f"ckpt={run_copy}", f"out={disk / 'export'}", "format=safetensors"]
    )
    assert_user_error(proc, f"Cannot write {disk / 'export'} (No space left on device)")
    assert list(disk.iterdir()) == []
    assert tree_sha256(run_copy.parent) == before


# ---- a read-only disk --------------------------------------------------------------------------


def test_a_run_dir_on_a_read_only_disk_is_refused_before_anything(mount, small_data_dir):
    disk = mount("ro", "1m", read_only=True)
    for where in ({"run_dir": disk / "run"}, {"root_dir": disk}):
        proc = train_cli(*TRAIN, "trainer.max_steps=5", data_dir=small_data_dir, **where)
        assert_user_error(proc, "(Read-only file system); the filesystem is read-only")
        assert str(disk) in proc.stderr, output(proc)


def test_a_data_dir_on_a_read_only_disk_leaves_no_run_dir(mount, tmp_path):
    # The corpus is prepared into a read-only place: refused once the run dir existed, which
    # then kept .hydra/, run_config.yaml and a FAILED marker.
    disk = mount("ro", "1m", read_only=True)
    proc = train_cli(*FAULTS, *STORIES, "trainer.max_steps=5", data_dir=disk / "data",
                     root_dir=tmp_path)  # fmt: skip
    assert_user_error(proc, "(Read-only file system); the filesystem is read-only")
    assert not (tmp_path / "outputs").exists(), sorted(tmp_path.rglob("*"))


@pytest.mark.parametrize(
    ("main", "args", "target"),
    [
        (evaluate_main, ["output={out}/result.json"], "result.json"),
        (export_main, ["out={out}/export", "format=safetensors"], "export"),
        (prepare_main, ["paths.data_dir={out}", *STORIES], "stories"),
    ],
    ids=["evaluate", "export", "prepare"],
)
def test_writing_to_a_read_only_disk_is_one_sentence(mount, run_copy, main, args, target):
    disk = mount("ro", "1m", read_only=True)
    before = tree_sha256(run_copy.parent)
    argv = [a.format(out=disk) for a in args]
    proc = run_main(main, argv if main is prepare_main else [f"ckpt={run_copy}", *argv])
    assert_user_error(proc, f"Cannot write {disk / target} (Read-only file system)")
    assert tree_sha256(run_copy.parent) == before


# ---- a killed process's temporaries ---------------------------------------------------------


def test_a_killed_rebuild_leaves_the_corpus_valid_and_the_next_run_clears_its_staging(tmp_path):
    """SIGKILL a `--force` rebuild while it builds aside: the old corpus stays valid, and the
    next prepare of it removes the dead process's staging dir (and keeps a live one's)."""
    data = tmp_path / "data"
    args = [f"paths.data_dir={data}", *STORIES]
    assert run_main(prepare_main, args).returncode == 0
    corpus = data / "stories"
    before = tree_sha256(corpus)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    big = [f"paths.data_dir={data}", "data.source.num_documents=20000", "--force"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "prepare.py"), *big], env=env)
    staging = corpus / f".staging.tmp-{proc.pid}"
    deadline = time.monotonic() + cli_timeout()
    while not (staging / "work").is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert staging.is_dir(), "the rebuild was killed before it started building"
    live = corpus / f".staging.tmp-{os.getpid()}"  # this test's own process is alive
    live.mkdir()
    assert run_main(prepare_main, args).returncode == 0  # the old corpus, still valid
    assert not staging.exists() and live.is_dir()
    live.rmdir()
    assert tree_sha256(corpus) == before
