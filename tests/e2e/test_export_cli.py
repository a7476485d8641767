"""`scripts/export.py` as a user runs it: exports a run, and refuses to overwrite an export in
one sentence. Everything else about export runs in-process: tests/unit/test_export.py."""

from __future__ import annotations

import pytest

from parrot_lm.export.safetensors import WEIGHTS_FILE
from tests.helpers import ROOT, assert_user_error, run_cli
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
