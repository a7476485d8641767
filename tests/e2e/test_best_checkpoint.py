"""best.ckpt, keep_last_k and `ckpt=<run>:best` on one tiny run and one resume of it: best.ckpt
holds the run's lowest logged validation, survives a resume whose validations are all worse,
only the k newest step files stay, and evaluate loads best.ckpt by `:best`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from parrot_lm.core.errors import CheckpointError
from parrot_lm.runs.loading import resolve_checkpoint
from parrot_lm.training.checkpointing import BEST_STATE_KEY
from tests.helpers import FAULTS, output, train_cli
from tests.helpers.cli import run_cli
from tests.helpers.config import ROOT
from tests.helpers.records import checkpoint_hashes

# Scheduling only (tests/conftest.py hands the longest files out first): two short trainings.
SCHEDULE_SECONDS = 60

METRIC = "val/loss_partial"  # FAULTS limits validation to one batch
VOCAB = 300  # TINY_DATA's tokenizer: a blind validation scores ln(300)
RUN = [*FAULTS, "logger=csv", "ckpt_keep_last_k=2"]


def validations(run: Path) -> dict[int, float]:
    """step -> the val loss the run logged there (CSVLogger, full precision)."""
    found: dict[int, float] = {}
    for path in sorted((run / "csv").rglob("metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get(METRIC):
                    found[int(row["step"])] = float(row[METRIC])
    return found


def step_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("step*.ckpt"))


def best_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)["callbacks"][BEST_STATE_KEY]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A 15-step run (validations and step files at 5, 10, 15), then a resume to 25 whose
    validations are blinded (all worse than before): what both left behind."""
    root = tmp_path_factory.mktemp("best")
    run, data = root / "run", root / "data"
    proc = train_cli(*RUN, "trainer.max_steps=15", run_dir=run, data_dir=data)
    assert proc.returncode == 0, output(proc)[-3000:]
    first = {
        "validations": validations(run),
        "steps": step_files(run),
        "best": torch.load(run / "checkpoints" / "best.ckpt", weights_only=True),
        "hashes": checkpoint_hashes(run),
    }
    proc = train_cli(
        *RUN,
        "trainer.max_steps=25",
        "+callbacks.blind._target_=tests.helpers.callbacks.BlindValidation",
        resume=run,
        data_dir=data,
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    return {"run": run, "first": first}


def test_best_holds_the_lowest_logged_validation(runs):
    first = runs["first"]
    logged = first["validations"]
    assert {5, 10, 15} <= set(logged), logged  # (and the step-0 baseline validation)
    best_step = min(logged, key=logged.get)
    best = first["best"]
    assert best["global_step"] == best_step
    assert best["last_validation"]["metrics"][METRIC] == pytest.approx(logged[best_step])
    assert best["callbacks"][BEST_STATE_KEY]["monitor"] == METRIC


def test_keep_last_k_leaves_the_two_newest_step_files(runs):
    assert runs["first"]["steps"] == ["step0000010.ckpt", "step0000015.ckpt"]
    assert step_files(runs["run"]) == ["step0000020.ckpt", "step0000025.ckpt"]


def test_resume_keeps_the_best_from_before_it(runs):
    run, first = runs["run"], runs["first"]
    logged = validations(run)
    after = {s: v for s, v in logged.items() if s > 15}
    assert sorted(after) == [20, 25]
    # The blinded validations score uniform logits: worse than the first run's best.
    assert all(v == pytest.approx(math.log(VOCAB), abs=1e-4) for v in after.values())
    best_before = min(first["validations"].values())
    assert best_before < min(after.values())
    # best.ckpt was not rewritten, and the resumed run's state still knows its score (last.ckpt
    # of the first run was saved before its final validation: the score comes from best.ckpt).
    assert checkpoint_hashes(run)["best.ckpt"] == first["hashes"]["best.ckpt"]
    state = best_state(run / "checkpoints" / "last.ckpt")
    assert float(state["best_model_score"]) == pytest.approx(best_before)
    # And resume continued from last.ckpt, not from the older best.ckpt.
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 25


def test_evaluate_best_loads_best_ckpt(runs, tmp_path):
    run, best = runs["run"], runs["first"]["best"]
    out = tmp_path / "r.json"
    proc = run_cli(["scripts/evaluate.py", f"ckpt={run}:best", f"output={out}"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["step"] == best["global_step"]


def test_resolve_best_and_last(runs, tmp_path):
    run = runs["run"]
    assert resolve_checkpoint(f"{run}:best") == run / "checkpoints" / "best.ckpt"
    assert resolve_checkpoint(f"{run}/checkpoints:last") == run / "checkpoints" / "last.ckpt"
    outputs = tmp_path / "outputs"
    (outputs / "runs").mkdir(parents=True)
    (outputs / "runs" / "named").symlink_to(run)
    assert resolve_checkpoint("named:best", outputs) == outputs / "runs/named/checkpoints/best.ckpt"
    # A file whose name ends in ':best' is that file.
    odd = tmp_path / "weird:best"
    odd.write_bytes(b"x")
    assert resolve_checkpoint(str(odd)) == odd


def test_a_run_without_best_is_one_sentence(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"has no best\.ckpt") as e:
        resolve_checkpoint(f"{run}:best")
    assert str(e.value).count(". ") == 0 and str(e.value).endswith(".")
    with pytest.raises(CheckpointError, match="names no run dir"):
        resolve_checkpoint("nowhere:best", tmp_path / "outputs")


@pytest.mark.parametrize(
    ("suffix", "hint"), [("bestt", " (did you mean :best?)"), ("step-100.ckpt", "")]
)
def test_an_unknown_suffix_of_an_existing_run_names_the_suffix(tmp_path, suffix, hint):
    outputs = tmp_path / "outputs"
    run = outputs / "runs" / "baseline"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    for spec in (f"{run}:{suffix}", f"baseline:{suffix}"):  # a run dir, a run name
        base = spec.rpartition(":")[0]
        with pytest.raises(CheckpointError) as e:
            resolve_checkpoint(spec, outputs)
        assert str(e.value) == (
            f"ckpt={spec}: unknown checkpoint suffix '{suffix}'{hint}; use {base}:best or "
            f"{base}:last, {base} alone for its newest checkpoint, or the path of one of its "
            ".ckpt files."
        )
    # Before a run that does not exist, the suffix is not the problem: no run is called that.
    with pytest.raises(CheckpointError, match="no run under .* is called nowhere:bestt"):
        resolve_checkpoint("nowhere:bestt", outputs)
