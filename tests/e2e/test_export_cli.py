"""`scripts/export.py` as a user runs it: exports a run, and refuses to overwrite an export in
one sentence. Everything else about export runs in-process: tests/unit/test_export.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from parrot_lm.export.safetensors import WEIGHTS_FILE
from tests.helpers import ROOT, assert_user_error, run_cli, tree_sha256
from tests.helpers.runs import bpe_tokenizer, make_bpe_run

EXPORT_SCRIPT = str(ROOT / "scripts" / "export.py")


@pytest.fixture(scope="module")
def bpe():
    return bpe_tokenizer()


def test_cli_export_and_errors(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    proc = run_cli([EXPORT_SCRIPT, f"ckpt={run}", "format=safetensors"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run / "export" / "safetensors"
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert (out / WEIGHTS_FILE).is_file()

    proc = run_cli([EXPORT_SCRIPT, f"ckpt={run}", "format=safetensors"], cwd=tmp_path)
    assert_user_error(proc, "already exists and is not empty; pass force=true")


def fill_run(run: Path) -> None:
    """What a trained run holds besides its checkpoint: config, Hydra record, logs, events."""
    (run / "run_config.yaml").write_text("seed: 1\n")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    (run / "train.log").write_text("step 7\n")
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.1").write_bytes(b"\x00events")
    (run / "checkpoints" / "step0000007.ckpt").write_bytes(b"step 7")


@pytest.mark.parametrize(
    "where, fragment",
    [
        ("run", "holds the checkpoint being exported"),  # issue 16: out=<run> force=true
        ("run/checkpoints", "holds the checkpoint being exported"),
        (".", "holds the checkpoint being exported"),
        ("other", "is a run dir"),
        ("parent_of_other", "is not empty and is not an earlier export"),
        ("run/tokenizer", "is not empty and is not an earlier export"),
    ],
)
def test_cli_force_never_deletes_a_run(tmp_path, bpe, where, fragment):
    """`force=true` may replace an earlier export only: a run dir, the checkpoint's own dir,
    a dir holding a run, or any other non-empty dir is refused with a sentence, and every file
    is byte for byte as it was."""
    run, _ = make_bpe_run(tmp_path, bpe)
    fill_run(run)
    other = tmp_path / "parent_of_other" / "other"
    (other / "checkpoints").mkdir(parents=True)
    fill_run(other)
    paths = {"other": other, "parent_of_other": other.parent, ".": tmp_path}
    out = paths.get(where, tmp_path / where)
    before = tree_sha256(tmp_path)
    proc = run_cli(
        [EXPORT_SCRIPT, f"ckpt={run}", f"out={out}", "format=safetensors", "force=true"],
        cwd=tmp_path,
    )
    assert_user_error(proc, fragment)
    assert tree_sha256(tmp_path) == before
