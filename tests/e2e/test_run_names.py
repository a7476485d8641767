"""Finding and naming runs: `name=` puts a run in outputs/runs/<name>; `ckpt=latest` and
`ckpt=<run name>` in evaluate, generate, export (and the chat API's model ids); runs that
failed are marked and never picked; debug=fdr leaves nothing; the other debug modes run; the
chat page's default is the lowest val loss."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from parrot_lm.core.errors import CheckpointError, ConfigError
from parrot_lm.runs.loading import resolve_checkpoint
from parrot_lm.runs.run_dir import RunDir, check_run_name, default_run_dir, default_sweep_dir
from tests.helpers import QUIET, SMALL_CORPUS, TINY_MODEL, fit, run_main, train_cli
from tests.helpers.chat import RUN, serve, shared_tiny_outputs
from tests.helpers.cli import assert_user_error, output

SCHEDULE_SECONDS = 120

BAD_NAMES = ["a/b", "..", "x..y", "", " ", "latest", ".hidden"]
# A tiny run on the session's small corpus, a few steps, no logger: what the debug and name
# tests train (the data dir is the `small_data_dir` fixture's).
TINY = [*TINY_MODEL, *SMALL_CORPUS, *QUIET, "data.batch_size=8", "logger=none"]


def age(run: Path, seconds: float) -> None:
    """Make every file of `run` `seconds` old (mtime): an older run for ckpt=latest."""
    then = time.time() - seconds
    for path in [run, *run.rglob("*")]:
        os.utime(path, (then, then))


@pytest.fixture
def outputs(tmp_path, tiny_run) -> Path:
    """An outputs dir holding two copies of the session's tiny run: runs/old (an hour old)
    and runs/new."""
    run, _ = tiny_run
    root = tmp_path / "outputs"
    for name in ("old", "new"):
        shutil.copytree(run, root / "runs" / name)
    age(root / "runs" / "old", 3600)
    return root


# -- name= ----------------------------------------------------------------------------------
def test_run_dir_is_named_and_a_taken_name_gets_a_suffix(tmp_path):
    log_dir = str(tmp_path / "outputs")
    first = default_run_dir(None, log_dir, "2026-01-01/00-00-00", "baseline")
    second = default_run_dir(None, log_dir, "2026-01-01/00-00-00", "baseline")
    sweep = default_sweep_dir(log_dir, "2026-01-01/00-00-00", "lr-sweep")
    assert Path(first) == tmp_path / "outputs" / "runs" / "baseline"
    assert Path(second) == tmp_path / "outputs" / "runs" / "baseline-2"
    assert Path(sweep) == tmp_path / "outputs" / "multiruns" / "lr-sweep"
    unnamed = default_run_dir(None, log_dir, "2026-01-01/00-00-00", None)
    assert Path(unnamed) == tmp_path / "outputs" / "runs" / "2026-01-01" / "00-00-00"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_name_is_one_sentence(name):
    with pytest.raises(ConfigError, match="name="):
        check_run_name(name)


@pytest.mark.parametrize("name", ["a/b", "..", "latest"])
def test_train_refuses_a_bad_name_before_making_a_dir(tmp_path, name):
    from parrot_lm.training.cli import main

    proc = run_main(main, [f"name={name}", f"paths.root_dir={tmp_path}"])
    assert_user_error(proc, f"name={name!r}" if name != "latest" else "name=latest")
    assert list(tmp_path.iterdir()) == []


def test_train_name_makes_outputs_runs_name(tmp_path, small_data_dir):
    """A real `python train.py name=baseline` where outputs/runs/baseline is taken."""
    (tmp_path / "outputs" / "runs" / "baseline").mkdir(parents=True)
    proc = train_cli(
        *TINY, "name=baseline", "trainer.max_steps=2", root_dir=tmp_path, data_dir=small_data_dir
    )
    assert proc.returncode == 0, output(proc)[-3000:]
    run = RunDir(tmp_path / "outputs" / "runs" / "baseline-2")
    assert run.last_checkpoint.is_file() and run.run_config.is_file()
    assert sorted(p.name for p in (tmp_path / "outputs" / "runs").iterdir()) == [
        "baseline",
        "baseline-2",
    ]


# -- ckpt=latest, ckpt=<run name> -----------------------------------------------------------
def test_resolve_checkpoint_by_name_latest_and_path(outputs):
    new, old = outputs / "runs" / "new", outputs / "runs" / "old"
    assert resolve_checkpoint("latest", outputs) == RunDir(new).last_checkpoint
    assert resolve_checkpoint("old", outputs) == RunDir(old).last_checkpoint
    assert resolve_checkpoint(old, outputs) == RunDir(old).last_checkpoint
    RunDir(new).mark_failed(RuntimeError("boom"))  # a failed run is never `latest`
    assert resolve_checkpoint("latest", outputs) == RunDir(old).last_checkpoint
    with pytest.raises(CheckpointError, match=r"newest runs: new, old \(or ckpt=latest\)"):
        resolve_checkpoint("nosuch", outputs)
    with pytest.raises(CheckpointError, match="found no checkpoint"):
        resolve_checkpoint("latest", outputs / "runs" / "empty")


def test_evaluate_takes_latest_and_a_run_name(outputs):
    from parrot_lm.evaluation.cli import main

    new, old = RunDir(outputs / "runs" / "new"), RunDir(outputs / "runs" / "old")
    args = [f"outputs_dir={outputs}", "max_tokens=200", "device=cpu"]
    proc = run_main(main, ["ckpt=latest", *args])
    assert proc.returncode == 0, output(proc)
    assert json.loads(proc.stdout)["checkpoint"] == str(new.last_checkpoint)
    proc = run_main(main, ["ckpt_path=old", *args])  # training's key name works too
    assert proc.returncode == 0, output(proc)
    assert json.loads(proc.stdout)["checkpoint"] == str(old.last_checkpoint)
    assert list(old.eval.glob("last-val-stride*.json"))


def test_generate_and_export_take_a_run_name(outputs):
    from parrot_lm.export.cli import main as export_main
    from parrot_lm.generation.cli import main as generate_main

    proc = run_main(
        generate_main,
        ["ckpt=old", f"outputs_dir={outputs}", "prompt=Once", "max_new_tokens=3", "device=cpu"],
    )
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.startswith("Once")
    proc = run_main(export_main, ["ckpt=latest", f"outputs_dir={outputs}", "format=safetensors"])
    assert proc.returncode == 0, output(proc)
    assert Path(proc.stdout.strip()) == RunDir(outputs / "runs" / "new").export("safetensors")
    assert (Path(proc.stdout.strip()) / "config.json").is_file()


def test_a_name_that_matches_nothing_lists_the_newest_runs(outputs):
    from parrot_lm.generation.cli import main

    proc = run_main(main, ["ckpt=nosuch", f"outputs_dir={outputs}"])
    assert_user_error(proc, "no run under")
    assert "the newest runs: new, old (or ckpt=latest)." in proc.stderr


# -- failed runs ----------------------------------------------------------------------------
def test_a_run_that_raises_is_marked_failed_and_skipped(tmp_path, small_data_dir):
    crash = ["+callbacks.crash._target_=tests.helpers.callbacks.RaiseAt", "+callbacks.crash.step=3"]
    proc = train_cli(
        *TINY, "name=crashed", "trainer.max_steps=6", "ckpt_every_n_steps=2", *crash,
        root_dir=tmp_path, data_dir=small_data_dir,
    )  # fmt: skip
    assert proc.returncode != 0
    run = RunDir(tmp_path / "outputs" / "runs" / "crashed")
    assert run.is_failed() and run.checkpoint_candidates()
    assert run.failed_marker.read_text().startswith("RuntimeError: test crash at step 3")
    from parrot_lm.report.discovery import discover

    (job,) = discover([run.path])
    assert job.status == "failed"
    with pytest.raises(CheckpointError, match="found no checkpoint of a run that did not fail"):
        resolve_checkpoint("latest", tmp_path / "outputs")


# -- debug modes ----------------------------------------------------------------------------
def test_fdr_leaves_no_run_dir(tmp_path, small_data_dir):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = train_cli(
        *TINY, "debug=fdr", root_dir=tmp_path / "root", data_dir=small_data_dir,
        env={"TMPDIR": str(scratch)},
    )  # fmt: skip
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "Run dir: " + str(scratch) in output(proc)  # it did have one while it ran
    # The footer says the dir is gone and suggests no command that would need it.
    assert "is temporary (a fast dev run keeps nothing) and is removed" in proc.stdout
    assert "Train more:" not in proc.stdout and "Evaluate:" not in proc.stdout
    assert not (tmp_path / "root" / "outputs").exists()
    assert list(scratch.glob("parrot-*")) == []  # (torch may keep its compile cache there)


def test_overfit_drives_the_loss_towards_zero(tmp_path, small_data_dir):
    loss = fit(tmp_path, *TINY, "debug=overfit", f"paths.data_dir={small_data_dir}")
    assert loss is not None and loss < 0.1  # 5.7 at step 0 (ln 300)


def test_limit_runs_a_short_whole_run(tmp_path, small_data_dir):
    loss = fit(tmp_path, *TINY, "debug=limit", f"paths.data_dir={small_data_dir}")
    run = RunDir(tmp_path / "run")
    assert loss is not None
    assert [p.name for p in run.checkpoint_candidates()] == [
        "last.ckpt",
        "step0000020.ckpt",
        "step0000010.ckpt",
    ]


def test_profiler_writes_its_report_into_the_run_dir(tmp_path, small_data_dir):
    fit(
        tmp_path, *TINY, "debug=profiler", "trainer.max_steps=4", f"paths.data_dir={small_data_dir}"
    )
    report = tmp_path / "run" / "fit-profiler.txt"
    assert report.read_text().startswith("FIT Profiler Report")


# -- chat: the default checkpoint and run names as model ids --------------------------------
@pytest.fixture
def chat_outputs(tmp_path, tmp_path_factory, small_data_dir) -> Path:
    """The chat tests' tiny run (val loss at steps 20 and 40), plus two newer runs: `newer`,
    holding only its step-20 checkpoint (a higher val loss), and `failed-best`, a full copy
    (the same lowest val loss, newer) marked FAILED."""
    root = tmp_path / "outputs"
    shutil.copytree(shared_tiny_outputs(tmp_path_factory, small_data_dir), root)
    age(root / RUN, 3600)
    newer = root / "runs" / "newer"
    shutil.copytree(root / RUN, newer)
    for ckpt in RunDir(newer).checkpoints.iterdir():
        if ckpt.name != "step0000020.ckpt":
            ckpt.unlink()
    os.utime(RunDir(newer).checkpoints / "step0000020.ckpt")
    shutil.copytree(root / RUN, root / "runs" / "failed-best")
    for ckpt in RunDir(root / "runs" / "failed-best").checkpoints.iterdir():
        os.utime(ckpt)
    RunDir(root / "runs" / "failed-best").mark_failed(RuntimeError("boom"))
    return root


def test_chat_defaults_to_the_lowest_val_loss(chat_outputs):
    from parrot_lm.serve.app import create_app
    from parrot_lm.serve.settings import Settings

    with serve(create_app(Settings(outputs_dir=chat_outputs))) as url:
        listing = httpx.get(url + "/api/checkpoints", timeout=60).json()
        models = httpx.get(url + "/v1/models", timeout=60).json()["data"]
        reply = httpx.post(
            url + "/v1/completions",
            json={"model": "newer", "prompt": "Once", "max_tokens": 2},
            timeout=60,
        )
    by_id = {c["id"]: c for c in listing["checkpoints"]}
    newest = listing["checkpoints"][0]
    assert newest["run"] in ("runs/failed-best", "runs/newer")  # the list stays newest first
    best = by_id[listing["default"]]
    assert (
        best["run"] == RUN
        and best["val_loss"] < by_id["runs/newer/checkpoints/step0000020.ckpt"]["val_loss"]
    )
    assert all(c["failed"] == (c["run"] == "runs/failed-best") for c in listing["checkpoints"])
    assert models[0]["id"] == listing["default"] and models[0]["default"] is True
    assert [m["default"] for m in models].count(True) == 1
    assert reply.status_code == 200, reply.text  # a run name as the model id
    assert reply.json()["model"] == "runs/newer/checkpoints/step0000020.ckpt"
