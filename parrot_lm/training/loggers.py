"""Loggers that keep a resumed run's history, as TensorBoard's `purge_step` already does.

Lightning's CSVLogger deletes an existing metrics.csv when it starts, so a resumed run lost the
rows of every step before the resume. `CSVLogger` here keeps the rows of the steps before
`purge_step` (the checkpoint the run resumes from) and drops the later ones, which the killed
run logged after its last checkpoint and the resumed run logs again.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from parrot_lm.core.io import atomic_file


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
