"""Lightning's loggers, made to continue a resumed run's history in the same place.

- `CSVLogger`: Lightning's deletes an existing metrics.csv when it starts, so a resumed run lost
  the rows of every step before the resume. This one keeps the rows of the steps before
  `purge_step` (the checkpoint the run resumes from) and drops the later ones, which the killed
  run logged after its last checkpoint and the resumed run logs again (TensorBoard's
  `purge_step` does the same for its events).
- `WandbLogger`: Weights & Biases, offline when no API key is set; the run's W&B id is kept in
  the run dir, so a resume continues the same W&B run.
- `MLFlowLogger`: MLflow with the run's own SQLite store in the run dir; the MLflow run id is
  kept there too, so a resume continues the same MLflow run.
- `log_text_samples`: the text samples of a validation, written the way each logger shows text.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import secrets
import string
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from parrot_lm.core.errors import ConfigError
from parrot_lm.core.io import atomic_file, atomic_write_text
from parrot_lm.runs.run_dir import RunDir
from parrot_lm.training.callbacks.tensorboard import sample_markdown

log = logging.getLogger(__name__)


class ResumableExperimentWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, starting from the rows before `purge_step`."""

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        header, kept = [], []
        if purge_step is not None and os.path.isfile(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                kept = [row for row in reader if _step(row) is not None and _step(row) < purge_step]
        super().__init__(log_dir)  # removes metrics.csv
        if header:
            self.metrics_keys = sorted(header)
            with atomic_file(path, "w") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)


def _step(row: dict[str, Any]) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


class CSVLogger(LightningCSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` that keeps the history of a resumed run.

    purge_step: the global step the run resumes from; rows from this step on are dropped
    (None: a new run, start an empty file).
    """

    def __init__(self, *args: Any, purge_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._purge_step = purge_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumableExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(self.log_dir, self._purge_step)
        return self._experiment


def logged_validation(run: RunDir, step: int) -> dict[str, Any] | None:
    """The validation metrics (`val/...`) the run logged at `step`, as {"step", "metrics"}, read
    from its TensorBoard events (as TensorBoard shows them, an earlier resume's purge applied)
    or else its metrics.csv; None when neither holds a validation at that step."""
    metrics: dict[str, float] = {}
    if run.tensorboard.is_dir():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(run.tensorboard), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            if tag.startswith("val/"):
                values = [e.value for e in accumulator.Scalars(tag) if e.step == step]
                if values:
                    metrics[tag] = float(values[-1])
    csv_file = run.csv / ExperimentWriter.NAME_METRICS_FILE
    if not metrics and csv_file.is_file():
        with open(csv_file, newline="") as f:
            for row in csv.DictReader(f):
                if _step(row) == step:
                    metrics.update(
                        {k: float(v) for k, v in row.items() if k.startswith("val/") and v}
                    )
    return {"step": step, "metrics": metrics} if metrics else None


def _require(module: str, extra: str, package: str) -> None:
    """A sentence instead of Lightning's ModuleNotFoundError when an optional logger is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"logger={extra} needs the {module} package; install it with "
            f"pip install -e '.[{extra}]' (or pip install {package})."
        )


def run_label(run: RunDir) -> str:
    """`<date>/<time>` of a run dir (`<sweep time>/<job>` of a sweep job): the name a run gets in
    W&B and MLflow, the same one the run dir has under outputs/."""
    return f"{run.path.parent.name}/{run.path.name}"


# -- Weights & Biases ----------------------------------------------------------------------
def wandb_api_key_set() -> bool:
    """Whether W&B would find an API key: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:  # a private module of wandb: if it moves, the environment variable still decides
        from wandb.sdk.lib.wbauth import read_netrc_auth

        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        return bool(read_netrc_auth(host=host))
    except Exception:
        return False


def wandb_mode(mode: str | None) -> str:
    """The W&B mode of a run: `mode` when given, else WANDB_MODE, else online with an API key
    and offline without one (so a run without an account still records everything, to
    `wandb sync` later, instead of stopping at a login prompt)."""
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_api_key_set() else "offline"


def new_wandb_id() -> str:
    """A fresh W&B run id: 8 random characters of [a-z0-9], as wandb makes its own (wandb's
    generator is private)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, writing into the run dir and continuing the run's W&B run.

    run_dir: the run dir; wandb.init writes `<run_dir>/wandb/`, and the W&B run id is kept in
    `<run_dir>/wandb/run_id` (written when the W&B run starts), so a resumed, requeued or
    moved run continues the same W&B run (`resume="allow"`).
    mode: online, offline or disabled; None: see `wandb_mode`.
    name: the W&B run name; None: the run dir's `<date>/<time>`.
    kwargs: more `wandb.init` arguments (tags, group, entity, notes, ...).
    """

    def __init__(
        self,
        run_dir: str,
        project: str = "parrot_lm",
        name: str | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        _require("wandb", "wandb", "wandb")
        run = RunDir(run_dir)
        self._id_file = run.wandb_run_id
        if self._id_file.is_file():
            run_id = self._id_file.read_text().strip()
        else:
            run_id = new_wandb_id()
        # reinit: a second fit in the same process (tests, a reused sweep worker) starts its own
        # W&B run; wandb's default there would hand back the previous one.
        kwargs.setdefault("reinit", "finish_previous")
        super().__init__(
            name=name or run_label(run),
            save_dir=str(run.path),
            id=run_id,
            project=project,
            mode=wandb_mode(mode),
            **kwargs,
        )
        # Lightning always passes anonymous=None, which wandb 0.2x+ warns about on every run.
        self._wandb_init.pop("anonymous", None)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The W&B run, its id recorded in the run dir the first time it starts."""
        started = self._experiment is not None
        experiment = super().experiment
        if not started and not self._id_file.is_file():
            atomic_write_text(self._id_file, str(self._id) + "\n")
        return experiment

    @rank_zero_only
    def close(self, failed: bool = False) -> None:
        """Finish the W&B run at the end of `run()`, so its files are complete and closed now
        (not at interpreter exit) and a later run in this process starts its own W&B run.
        Not in `finalize`: Lightning calls that after the step-0 `validate` too."""
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._experiment.finish(exit_code=1 if failed else 0)
        self._experiment = None


def close_loggers(loggers: Sequence[Logger], failed: bool = False) -> None:
    """Close the loggers that hold a run open beyond Lightning's `finalize` (W&B's)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.close(failed)


# -- MLflow ----------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_sql_store() -> Iterator[None]:
    """Silence the SADeprecationWarning MLflow's SQL store raises when it first sets up its
    tables under SQLAlchemy 2.1 (the `noload` loader): MLflow's to fix, nothing a user can do."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated")
        yield


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger with a local store in the run dir, continuing the run's MLflow
    run on resume.

    run_dir: the run dir. Without `tracking_uri` the store is `<run_dir>/mlflow/mlflow.db`
    (SQLite: MLflow 3 refuses its old file store) with artifacts in `<run_dir>/mlflow/artifacts`,
    so the run's MLflow history moves with the run dir. The MLflow run id is kept per tracking
    URI in `<run_dir>/mlflow/run_ids.json`, so a resume continues the same MLflow run.
    tracking_uri: another store (a shared `sqlite:///...` or an MLflow server).
    run_name: the MLflow run name; None: the run dir's `<date>/<time>`.
    kwargs: more MLFlowLogger arguments (tags, log_model, ...).
    """

    def __init__(
        self,
        run_dir: str,
        experiment_name: str = "parrot_lm",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        _require("mlflow", "mlflow", "mlflow-skinny")
        run = RunDir(run_dir)
        self._ids_file = run.mlflow_run_ids
        self._store_dir = run.mlflow
        # The run's own store is named "run dir" in run_ids.json: a moved run dir still finds
        # its run id, though the store's absolute path changed.
        self._store_key = tracking_uri or "run dir"
        local = tracking_uri is None
        self._artifacts_uri = run.mlflow_artifacts.absolute().as_uri()
        self.artifacts_in_run_dir = True  # see `experiment`
        kwargs.setdefault("artifact_location", self._artifacts_uri if local else None)
        with quiet_sql_store():
            super().__init__(
                experiment_name=experiment_name,
                run_name=run_name or run_label(run),
                tracking_uri=f"sqlite:///{run.mlflow_db.absolute()}" if local else tracking_uri,
                run_id=self._stored_run_ids().get(self._store_key),
                **kwargs,
            )

    def _stored_run_ids(self) -> dict[str, str]:
        try:
            ids = json.loads(self._ids_file.read_text())
        except (OSError, ValueError):
            return {}
        return ids if isinstance(ids, dict) else {}

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The MlflowClient; the run is created (or found again) the first time, and its id
        recorded in the run dir."""
        if self._initialized:
            return self._mlflow_client
        if self._store_key == "run dir":
            self._store_dir.mkdir(parents=True, exist_ok=True)  # SQLite makes no parent dirs
        with quiet_sql_store():
            if self._run_id is None and self._experiment_id is None:
                # Created here, as Lightning would, minus its warning on every new run (a new
                # run dir's store never has the experiment yet).
                found = self._mlflow_client.get_experiment_by_name(self._experiment_name)
                if found is None:
                    self._experiment_id = self._mlflow_client.create_experiment(
                        self._experiment_name, artifact_location=self._artifact_location
                    )
            client = super().experiment
        if self._store_key == "run dir":
            # MLflow records a run's artifact location as an absolute path when the run starts.
            # A run dir moved since then would have its samples written to the old place (or
            # fail there on another machine): skip them, metrics and params still go on.
            where = client.get_run(self._run_id).info.artifact_uri
            self.artifacts_in_run_dir = where.startswith(self._artifacts_uri)
            if not self.artifacts_in_run_dir:
                log.warning(
                    "MLflow: this run's artifacts live at %s, outside its (moved) run dir; "
                    "text samples are not logged to MLflow.",
                    where,
                )
        ids = self._stored_run_ids()
        if ids.get(self._store_key) != self._run_id:
            atomic_write_text(self._ids_file, json.dumps({**ids, self._store_key: self._run_id}))
        return client


def purges_on_resume(logger: Logger) -> bool:
    """Whether `logger` drops a resumed run's history from the checkpoint's step on
    (`purge_step`: TensorBoard's, ParrotLM's CSVLogger), so that step's validation is logged
    again; W&B and MLflow keep every point they were sent."""
    return isinstance(logger, TensorBoardLogger | CSVLogger)


# -- text samples -----------------------------------------------------------------------------
def log_text_samples(
    logger: Logger, prompts: Sequence[str], samples: Sequence[str], step: int
) -> None:
    """Write one validation's samples the way `logger` shows text: TensorBoard's Text tab, a
    W&B table (step, prompt, sample), an MLflow text artifact `samples/step<N>.txt`; nothing for
    a logger without text (CSV)."""
    if isinstance(logger, TensorBoardLogger):
        text = sample_markdown(list(samples))  # wrapped Markdown code blocks
        logger.experiment.add_text("samples", text, global_step=step)
    elif isinstance(logger, LightningWandbLogger):
        rows = [[step, p, s] for p, s in zip(prompts, samples, strict=True)]
        logger.log_text("samples", columns=["step", "prompt", "sample"], data=rows, step=step)
    elif isinstance(logger, LightningMLFlowLogger):
        client = logger.experiment  # starting the run decides artifacts_in_run_dir
        if not getattr(logger, "artifacts_in_run_dir", True):
            return
        text = "\n\n".join(f"{p!r} ->\n{s}" for p, s in zip(prompts, samples, strict=True))
        client.log_text(logger.run_id, text + "\n", f"samples/step{step:07d}.txt")
