"""logger=wandb (offline) and logger=mlflow (the run dir's SQLite store): the same metrics at
the same optimizer steps as TensorBoard and CSV, the run's hyperparameters, the text samples,
and a resume that continues the same W&B and MLflow run (issue 17). No network."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from parrot_lm.core.errors import ConfigError
from parrot_lm.runs.run_dir import RunDir
from parrot_lm.training import loggers
from tests.helpers import QUIET, SHORT_SAMPLES, SMALL_CORPUS, TINY_MODEL, compose_train
from tests.helpers.records import wait_for_the_next_second, wandb_run

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

SCHEDULE_SECONDS = 40  # scheduling only (tests/conftest.py): ~36 s alone on 2 cores

# 4 steps, validation at 0, 2 and 4 (the whole val split), every step's train metrics logged.
STEPS = 4
RESUMED_STEPS = 6
COMMON = [
    *TINY_MODEL,
    *SMALL_CORPUS,
    *QUIET,
    *SHORT_SAMPLES,
    "data.batch_size=8",
    f"trainer.max_steps={STEPS}",
    "val_every_n_steps=2",
    "trainer.log_every_n_steps=1",
]
TRAIN_METRICS = {"train/loss", "train/lr", "train/tokens", "train/grad_norm"}


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """No W&B account: no API key, no netrc, wandb's own dirs inside tmp_path, so the logger
    chooses offline mode by itself (nothing here sets WANDB_MODE) and nothing leaves tmp_path."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


def fit(tmp_path: Path, data_dir: Path, *overrides: str) -> float | None:
    from parrot_lm.training.run import run

    return run(compose_train(tmp_path, [*COMMON, f"paths.data_dir={data_dir}", *overrides]))


def resume(tmp_path: Path, data_dir: Path, *overrides: str) -> float | None:
    """`resume=<tmp_path>/run trainer.max_steps=6`: compose has no command line, so the run's
    saved config gets the longer max_steps (as tests/integration/test_hparams.py does)."""
    run_config = RunDir(tmp_path / "run").run_config
    saved = OmegaConf.load(run_config)
    saved.trainer.max_steps = RESUMED_STEPS
    OmegaConf.save(saved, run_config)
    wait_for_the_next_second()  # TensorBoard's events are read back in file order
    return fit(tmp_path, data_dir, *overrides, f"resume={tmp_path / 'run'}")


def same_series(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """The same steps in the same order, and the same values to float32 precision."""
    steps = [s for s, _ in got] == [s for s, _ in want]
    return steps and [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def csv_series(run_dir: Path, name: str) -> dict[int, float]:
    with open(RunDir(run_dir).csv / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {int(float(r["step"])): float(r[name]) for r in rows if r.get(name) not in (None, "")}


def wandb_series(runs: list[dict], name: str) -> list[tuple[int, float]]:
    """(optimizer step, value) of every point of `name` in these W&B runs, in order."""
    return [
        (row["trainer/global_step"], row[name])
        for run in runs
        for row in run["history"]
        if name in row
    ]


def offline_runs(run_dir: Path) -> list[dict]:
    """The run dir's offline W&B runs, oldest first (one per fit of the run)."""
    files = sorted(RunDir(run_dir).wandb.glob("offline-run-*/run-*.wandb"))
    return [wandb_run(p) for p in files]


def test_wandb_offline_logs_the_csv_metrics_hparams_samples_and_a_resume_continues_its_run(
    tmp_path, small_data_dir, offline_wandb
):
    run_dir = tmp_path / "run"
    fit(tmp_path, small_data_dir, "logger=[csv,wandb]")
    (first,) = offline_runs(run_dir)
    run_id = RunDir(run_dir).wandb_run_id.read_text().strip()
    assert first["id"] == run_id

    # The same numbers as CSV, on the optimizer-step axis (trainer/global_step).
    val = wandb_series([first], "val/loss")
    assert [s for s, _ in val] == [0, 2, 4]
    assert same_series(val, sorted(csv_series(run_dir, "val/loss").items()))
    for name in TRAIN_METRICS:
        assert same_series(wandb_series([first], name), sorted(csv_series(run_dir, name).items()))
    assert [s for s, _ in wandb_series([first], "train/loss")] == [0, 1, 2, 3]

    # The run's hyperparameters, as the LightningModule saved them.
    assert first["config"]["model"]["d_model"] == 32
    assert first["config"]["optim"]["lr"] == pytest.approx(3e-3)
    # A text sample table after each validation.
    tables = sorted(run_dir.glob("wandb/offline-run-*/files/media/table/samples_*.table.json"))
    assert len(tables) == 3
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["step", "prompt", "sample"]
    assert table["data"][0][0] == STEPS and table["data"][0][1] == "Once upon a time"

    # A resume to step 6 logs into the same W&B run id, from where the checkpoint left off:
    # no second point at step 4 (W&B keeps the first run's), train steps 4 and 5, val at 6.
    resume(tmp_path, small_data_dir, "logger=[csv,wandb]")
    runs = offline_runs(run_dir)
    assert len(runs) == 2 and {r["id"] for r in runs} == {run_id}
    assert RunDir(run_dir).wandb_run_id.read_text().strip() == run_id
    assert [s for s, _ in wandb_series(runs, "val/loss")] == [0, 2, 4, 6]
    assert [s for s, _ in wandb_series(runs, "train/loss")] == list(range(RESUMED_STEPS))
    assert same_series(
        wandb_series(runs, "val/loss"), sorted(csv_series(run_dir, "val/loss").items())
    )


def test_mlflow_and_tensorboard_log_the_same_metrics_params_samples_and_a_resume_continues(
    tmp_path, small_data_dir
):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    layout = RunDir(run_dir)
    val_loss = fit(tmp_path, small_data_dir, "logger=[tensorboard,mlflow]")
    client = MlflowClient(f"sqlite:///{layout.mlflow_db}")

    def only_run():
        experiments = [e.experiment_id for e in client.search_experiments()]
        (found,) = client.search_runs(experiments)  # exactly one MLflow run
        return found

    def history(run_id: str, name: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(run_id, name)]

    def tensorboard(name: str) -> list[tuple[int, float]]:
        events = EventAccumulator(str(layout.tensorboard), size_guidance={"scalars": 0}).Reload()
        return [(e.step, e.value) for e in events.Scalars(name)]

    first = only_run()
    run_id = first.info.run_id
    assert json.loads(layout.mlflow_run_ids.read_text()) == {"run dir": run_id}
    assert first.info.run_name == f"{tmp_path.name}/run" and first.info.status == "FINISHED"

    # Both loggers wrote, the same numbers at the same optimizer steps.
    val = history(run_id, "val/loss")
    assert [s for s, _ in val] == [0, 2, 4]
    assert same_series(val, tensorboard("val/loss"))
    assert math.isclose(val[-1][1], val_loss, rel_tol=1e-6)
    for name in TRAIN_METRICS:
        assert same_series(history(run_id, name), tensorboard(name)), name
    assert [s for s, _ in history(run_id, "train/loss")] == [0, 1, 2, 3]
    # Hyperparameters (flattened by Lightning) and a text sample per validation.
    assert first.data.params["model/d_model"] == "32"
    assert float(first.data.params["optim/lr"]) == pytest.approx(3e-3)
    samples = [a.path for a in client.list_artifacts(run_id, "samples")]
    assert samples == [f"samples/step{s:07d}.txt" for s in (0, 2, 4)]
    assert (
        (layout.mlflow_artifacts / run_id / "artifacts" / samples[-1])
        .read_text()
        .startswith("'Once upon a time' ->\nOnce upon a time")
    )

    # A resume to step 6: still one MLflow run, the same one, steps up to 6 with no
    # duplicate point; TensorBoard continues likewise.
    resume(tmp_path, small_data_dir, "logger=[tensorboard,mlflow]")
    assert only_run().info.run_id == run_id
    assert [s for s, _ in history(run_id, "val/loss")] == [0, 2, 4, 6]
    assert [s for s, _ in history(run_id, "train/loss")] == list(range(RESUMED_STEPS))
    assert same_series(history(run_id, "val/loss"), tensorboard("val/loss"))
    assert len(client.list_artifacts(run_id, "samples")) == 4


def test_a_moved_run_dir_continues_its_wandb_and_mlflow_runs_and_writes_nothing_at_the_old_place(
    tmp_path, small_data_dir, offline_wandb, caplog
):
    from mlflow.tracking import MlflowClient

    old, new = tmp_path / "old", tmp_path / "new"
    fit(old, small_data_dir, "logger=[wandb,mlflow]")
    wandb_id = RunDir(old / "run").wandb_run_id.read_text().strip()
    new.mkdir()
    (old / "run").rename(new / "run")
    resume(new, small_data_dir, "logger=[wandb,mlflow]")
    assert not (old / "run").exists()  # nothing recreated where the run was

    runs = offline_runs(new / "run")
    assert len(runs) == 2 and {r["id"] for r in runs} == {wandb_id}
    assert [s for s, _ in wandb_series(runs, "val/loss")] == [0, 2, 4, 6]
    layout = RunDir(new / "run")
    client = MlflowClient(f"sqlite:///{layout.mlflow_db}")
    (found,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert json.loads(layout.mlflow_run_ids.read_text()) == {"run dir": found.info.run_id}
    steps = [m.step for m in client.get_metric_history(found.info.run_id, "val/loss")]
    assert steps == [0, 2, 4, 6]
    # MLflow keeps the artifact path of the run's start: the samples after the move are
    # skipped, with a warning, rather than written to the old place.
    assert "text samples are not logged to MLflow" in caplog.text


# -- choosing W&B's mode; a missing package ----------------------------------------------------
def test_wandb_mode_is_offline_without_an_api_key(tmp_path, monkeypatch, offline_wandb):
    assert loggers.wandb_mode(None) == "offline"
    assert loggers.wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert loggers.wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")  # wandb's own variable wins over the key
    assert loggers.wandb_mode(None) == "offline"


def test_a_missing_logger_package_is_one_sentence(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name)
    )
    with pytest.raises(ConfigError, match=r"^logger=mlflow needs the mlflow package; .*\)\.$"):
        loggers.MLFlowLogger(run_dir=str(tmp_path))
