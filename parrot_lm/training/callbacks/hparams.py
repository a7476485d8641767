"""TensorBoard HParams: one session per run, its hyperparameters against its validation loss.

At the run's first validation its hyperparameters (model.*, optim.*, a few data/trainer keys,
seed) are written as an HParams session into the run's TensorBoard dir, with two metric
columns: the validation loss the run logs (`val/loss`, or `val/loss_partial` when validation is
limited), whose last value the HParams tab shows (the final val loss); and `val/best_loss`, the
lowest validation so far, logged at each validation. No `hp/*` copies: a column reads the
scalar of its own tag, so a copy would only add a second plot of the same numbers.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L

from parrot_lm.training.lit_module import latest_val_loss, val_metric_names

log = logging.getLogger(__name__)

BEST_VAL_LOSS = "val/best_loss"
SESSION_TAG = b"_hparams_/session_start_info"  # torch/tensorboard's HParams session tag
SCAN_RECORDS = 1000  # records read per events file when looking for a session
TRAINER_KEYS = ("accumulate_grad_batches", "precision", "max_steps")


def hparam_value(value: Any) -> int | float | str | bool:
    """A value TensorBoard's HParams accepts: int, float, str, bool (lists as text, None "null")."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d tensor or numpy
        return hparam_value(value.item())
    if isinstance(value, (list, tuple)):
        return str([_plain(v) for v in value])
    return str(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"d_model": 32}} -> {"model.d_model": 32}; OmegaConf containers are resolved."""
    try:  # DictConfig from Hydra (instantiate passes nested nodes through unconverted)
        from omegaconf import OmegaConf

        if OmegaConf.is_config(params):
            params = OmegaConf.to_container(params, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def has_hparams_session(log_dir: str | Path) -> bool:
    """Whether any events file in `log_dir` already holds an HParams session (a resumed run, or a
    restart in the same run dir). TensorBoard keeps one session per run dir (a tag's first
    metadata), so a second would be dead weight that never shows."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        try:
            # A session is written at fit start, so it sits among the first records of its
            # file; reading a long run's whole events files (pure Python) could take minutes.
            for record in itertools.islice(RawEventFileLoader(str(path)).Load(), SCAN_RECORDS):
                if SESSION_TAG in record:
                    return True
        except Exception as e:  # a truncated or foreign file: not a session, say so
            log.warning("Could not read %s while looking for an HParams session (%s).", path, e)
    return False


def hparams_summaries(params: Mapping[str, Any], metric_tags: Iterable[str]) -> list[Any]:
    """The experiment, session-start and session-end Summary protos of one HParams session.

    Like torch.utils.tensorboard.summary.hparams, except that bools stay bools (torch turns
    them into numbers). The session is marked successful at once, as torch and Lightning do:
    its metrics are whatever the run last logged under `metric_tags`.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    now = time.time()
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=now)
    infos = []
    for name, value in params.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value, kind = value, "DATA_TYPE_BOOL"
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value, kind = float(value), "DATA_TYPE_FLOAT64"
        else:
            start.hparams[name].string_value, kind = str(value), "DATA_TYPE_STRING"
        infos.append(api_pb2.HParamInfo(name=name, type=api_pb2.DataType.Value(kind)))
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in metric_tags],
        time_created_secs=now,
    )
    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.Status.Value("STATUS_SUCCESS"), end_time_secs=now
    )

    def summary(tag: str, **content: Any) -> Any:
        data = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **content)
        plugin = SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()
        )
        return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])

    return [
        summary(metadata.EXPERIMENT_TAG, experiment=experiment),
        summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        summary(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    ]


def _tensorboard_logger(trainer: L.Trainer):
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger
    return None


class HParamsSummary(L.Callback):
    """Writes the run's HParams session at its first validation and the best val loss at each.

    `extra` holds the config values the module does not know (data.*, seed), nested or flat;
    model.* and optim.* come from the LightningModule's hparams (the resolved values the run
    trains with), the trainer keys from the Trainer. Does nothing without a TensorBoardLogger,
    and nothing on ranks other than zero. The best val loss is kept in checkpoints, so a
    resumed run reports the best over the whole run.
    """

    def __init__(self, extra: Mapping[str, Any] | None = None) -> None:
        self.extra = flatten(extra or {})
        self.best_val_loss: float | None = None
        self.session_written = False

    # -- state carried in checkpoints -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best_val_loss": self.best_val_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        best = state_dict.get("best_val_loss")
        if best is not None:
            self.best_val_loss = float(best)

    # -- what is logged ------------------------------------------------------------------------
    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The flat {name: int | float | str | bool} hyperparameters of this run."""
        hp = pl_module.hparams
        params: dict[str, Any] = {}
        for group in ("model", "optim"):
            if isinstance(hp.get(group), Mapping):
                params.update(flatten(hp[group], group + "."))
        for key in TRAINER_KEYS:
            params[f"trainer.{key}"] = getattr(trainer, key, None)
        params.update(self.extra)
        return {k: hparam_value(v) for k, v in sorted(params.items())}

    def write_session(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The run's HParams session, once per run dir (a resumed run keeps its first)."""
        logger = _tensorboard_logger(trainer)
        if self.session_written or logger is None:
            return
        self.session_written = True  # looked for once per process, written at most once
        if has_hparams_session(logger.log_dir):
            log.info(
                "HParams: %s already has this run's session; not writing another.", logger.log_dir
            )
            return
        # Written straight into the run's events file rather than through
        # TensorBoardLogger.log_hyperparams(params, metrics): that would also log placeholder
        # metric values at step 0 (shown as the result of a run killed before its end) and add
        # these flat keys to the logger's hparams.yaml next to the nested ones Lightning saved.
        metrics = (val_metric_names(trainer)[0], BEST_VAL_LOSS)
        writer = logger.experiment._get_file_writer()  # as Lightning's log_hyperparams does
        for summary in hparams_summaries(self.collect(trainer, pl_module), metrics):
            writer.add_summary(summary)
        writer.flush()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """At each validation (the one before training included): write the session the first
        time (its metric column is the loss name validation logs), log the best so far."""
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        value = latest_val_loss(trainer)
        if value is None:
            return
        self.write_session(trainer, pl_module)
        if math.isfinite(value) and (self.best_val_loss is None or value < self.best_val_loss):
            self.best_val_loss = value
        logger = _tensorboard_logger(trainer)
        if logger is not None and self.best_val_loss is not None:
            logger.log_metrics({BEST_VAL_LOSS: self.best_val_loss}, step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run's loggers drop what was logged from its checkpoint's step on, and a
        validation at that very step is not repeated (LitLM logs its metrics again, see its
        on_train_start): the best so far is logged again too, so its curve has no gap."""
        last = getattr(pl_module, "last_validation", None)
        logger = _tensorboard_logger(trainer)
        if (
            trainer.global_step > 0
            and last
            and last["step"] == trainer.global_step
            and self.best_val_loss is not None
            and logger is not None
            and trainer.is_global_zero
        ):
            logger.log_metrics({BEST_VAL_LOSS: self.best_val_loss}, step=trainer.global_step)
