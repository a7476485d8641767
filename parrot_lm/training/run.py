"""The training stage: composed config in, trained checkpoint, TensorBoard run and sample out."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import signal
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from parrot_lm.config.schema import absolute_paths, validate_config
from parrot_lm.core.errors import CheckpointError, ConfigError, DataError, SamplingError
from parrot_lm.core.hardware import check_accelerator, warn_if_slow_precision
from parrot_lm.core.io import remove_stale_temporaries
from parrot_lm.data.datamodule import TokenDataModule
from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import sample_text
from parrot_lm.model import GPTConfig
from parrot_lm.runs.checkpoints import check_compatible, load_checkpoint, newest_good_checkpoint
from parrot_lm.runs.identity import check_data, run_identity, save_run_tokenizer
from parrot_lm.runs.loading import resolve_checkpoint
from parrot_lm.runs.resume import check_steps_left, merge_resume_config, warn_of_rewind
from parrot_lm.runs.run_dir import RunDir
from parrot_lm.training.callbacks.progress import StepProgress
from parrot_lm.training.callbacks.resume import GracefulStop, RNGState
from parrot_lm.training.callbacks.samples import TextSamples
from parrot_lm.training.callbacks.tensorboard import NoEpochScalar
from parrot_lm.training.console import best_checkpoint, next_steps, quiet_lightning
from parrot_lm.training.launch import fit_to_launcher, in_multirun
from parrot_lm.training.lit_module import LitLM, latest_val_loss, val_metric_names
from parrot_lm.training.loggers import close_loggers, logged_validation
from parrot_lm.training.speed import apply_speed_settings

log = logging.getLogger(__name__)


def resolve_model_config(model: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Fill the vocab from the data's tokenizer unless set (GPTConfig pads it to
    `vocab_multiple`); refuse a vocab the data overflows."""
    model = dict(model)
    if model.get("vocab_size") is None:
        model["vocab_size"] = int(meta["vocab_size"])
    max_id = max(split["max_token_id"] for split in meta["splits"].values())
    if model["vocab_size"] <= max_id:
        raise DataError(
            f"model.vocab_size is {model['vocab_size']} but the data contains token id {max_id}; "
            f"set model.vocab_size to at least {max_id + 1} (or null to use the data's)."
        )
    try:
        return GPTConfig(**model).to_dict()
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


def build_datamodule(data: DictConfig) -> TokenDataModule:
    kwargs = OmegaConf.to_container(data, resolve=True)
    kwargs.pop("name", None)
    return TokenDataModule(**kwargs)


def instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with a failure turned into one ConfigError sentence."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"Cannot build {what} ({node.get('_target_')}): {cause}") from e


def instantiate_group(group: DictConfig | None, what: str = "a callback or logger") -> list[Any]:
    """Callbacks/loggers: every entry, in config order; a null entry is switched off
    (`callbacks.text_samples=null`). The schema checked that the others have a `_target_`."""
    return [instantiate(node, what) for node in group_entries(group)]


def group_entries(group: DictConfig | None) -> list[DictConfig]:
    """The switched-on entries of a callbacks or logger group."""
    return [node for node in (group or {}).values() if node is not None and "_target_" in node]


def prepare_run_config(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, bool]:
    """The config this run executes, and whether it continues an earlier run in this dir."""
    run_dir = RunDir(cfg.paths.output_dir)
    resuming = cfg.resume is not None or bool(run_dir.checkpoint_candidates())
    # A resume command's own values are typed and range-checked as given; the checks across
    # fields run on the config the resumed run executes (`+callbacks.x.y=...` merges into the
    # run's own callback x).
    cfg = validate_config(cfg, cross_checks=not resuming)
    cfg = absolute_paths(cfg)  # the saved config means the same dirs from anywhere
    if resuming:
        saved = run_dir.load_config()
        cfg = validate_config(merge_resume_config(saved, cfg, overrides))
    check_sampling(cfg)  # a bad sample.* or text_samples setting fails now, not mid-run
    # Lightning would refuse a missing accelerator only when the Trainer is built, after the
    # run config and tokenizer are written, and in words that name no setting.
    check_accelerator(str(cfg.trainer.accelerator), accelerator_group(overrides))
    if not resuming:
        if cfg.optim.schedule_steps is None:  # fixed now, so a longer resume keeps the schedule
            cfg.optim.schedule_steps = cfg.trainer.max_steps
        if rank_zero_only.rank == 0:  # DDP ranks share the run dir
            run_dir.save_config(cfg)
    return cfg, resuming


def accelerator_group(overrides: list[str]) -> str | None:
    """The trainer config option (`trainer=gpu`) this command chose, when it is what set
    trainer.accelerator: None for the default trainer and when the command sets the
    accelerator itself (or outside Hydra), so check_accelerator's advice names the setting
    the user can change."""
    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("trainer")
    if choice in (None, "default") or any(
        o.lstrip("+").startswith("trainer.accelerator=") for o in overrides
    ):
        return None
    return str(choice)


def select_checkpoint(
    cfg: DictConfig, resuming: bool, model_cfg: dict[str, Any], identity: dict[str, str]
) -> tuple[Path | None, int, dict[str, Any] | None]:
    """The checkpoint to continue from, its global step and its last validation ({"step",
    "metrics"} or None), checked loadable, of this model config, and trained on this data with
    this tokenizer (`identity`, runs/identity.py)."""
    ckpt_dir = RunDir(cfg.paths.output_dir).checkpoints
    remove_stale_temporaries(ckpt_dir)
    if cfg.ckpt_path not in (None, "last"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():  # a file of this run's, else as the scripts' ckpt= (a run, latest)
            own = ckpt_dir / path
            path = own if own.is_file() else resolve_checkpoint(cfg.ckpt_path, cfg.paths.log_dir)
        ckpt = load_checkpoint(path)
    elif resuming or cfg.ckpt_path == "last":
        found = newest_good_checkpoint(ckpt_dir)
        if found is None:
            if cfg.ckpt_path == "last":
                raise CheckpointError(f"ckpt_path=last, but {ckpt_dir} holds no checkpoint.")
            log.warning("No checkpoint in %s yet; starting this run from step 0.", ckpt_dir)
            return None, 0, None
        path, ckpt = found
    else:
        return None, 0, None
    check_compatible(ckpt, model_cfg, path)
    check_data(ckpt, path, identity, Path(cfg.data.data_dir))
    log.info("Resuming from %s (step %d)", path, ckpt["global_step"])
    warn_of_rewind(ckpt_dir, int(ckpt["global_step"]))
    return path, int(ckpt["global_step"]), ckpt.get("last_validation")


def run(cfg: DictConfig) -> float | None:
    """Train as configured; returns the final val loss (the metric sweeps optimise).

    In a sweep, a diverged job (non-finite loss) is a result, not a failure: it scores +inf
    and the sweep goes on. A SIGTERM that Lightning handles itself, outside GracefulStop's
    window (during the first validation, say), exits with 143 as GracefulStop's do:
    Lightning's SIGTERMException is a SystemExit without a code, status 0, which would tell
    a scheduler or a sweep that the run had finished.
    """
    try:
        with contextlib.ExitStack() as stack:
            return _run(cfg, stack)
    except FloatingPointError as e:
        if not in_multirun():
            raise
        log.error("%s This sweep job scores +inf; the sweep goes on.", e)
        return math.inf
    except SIGTERMException:
        log.warning(
            "Stopped by SIGTERM before training reached a checkpoint; start it again with: "
            "python train.py resume=%s",
            cfg.paths.output_dir,
        )
        raise SystemExit(128 + signal.SIGTERM) from None


def _run(cfg: DictConfig, stack: contextlib.ExitStack) -> float | None:
    # Lightning 2.6 on torch 2.13 warns about its own internals on every run; not actionable.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    quiet_lightning()
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    if rank_zero_only.rank > 0:  # one log per run: other ranks only warn
        logging.getLogger("parrot_lm").setLevel(logging.WARNING)
    cfg, resuming = prepare_run_config(cfg, overrides)
    run_dir = RunDir(cfg.paths.output_dir)
    fit_to_launcher(cfg, stack)
    L.seed_everything(cfg.seed, workers=True)
    warn_if_slow_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))

    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    identity = run_identity(datamodule.meta, datamodule.load_tokenizer())
    lit, model_cfg = build_module(cfg, datamodule.meta, identity)
    # Every check that can refuse this run comes before its first write into the run dir.
    ckpt_path, start_step, last_validation = select_checkpoint(cfg, resuming, model_cfg, identity)
    if ckpt_path is not None and resuming:
        check_steps_left(cfg.trainer.max_steps, start_step)
        if start_step == cfg.trainer.max_steps:  # a finished run (a requeued job, say)
            return already_done(start_step, last_validation)
    if rank_zero_only.rank == 0:  # next to the checkpoints: evaluate/generate/export need it
        save_run_tokenizer(run_dir, datamodule.meta["tokenizer"], datamodule.data_dir, identity)
    # On resume, hide the killed run's events past the checkpoint: the curves stay continuous.
    purge_step = start_step if ckpt_path is not None and resuming else None
    if purge_step is not None and not _covers(last_validation, start_step):
        # A periodic checkpoint is saved before its step's validation, which the resumed run
        # does not repeat and its loggers drop (purge_step): logged again from the run's logs.
        lit.logged_validation = logged_validation(run_dir, start_step)
    trainer, graceful = build_trainer(cfg, run_dir, purge_step)
    # W&B keeps its run open past Lightning's finalize: closed when this run ends, however.
    stack.push(lambda kind, *_: close_loggers(trainer.loggers, failed=kind is not None))
    log.info("Run dir: %s", run_dir.path.resolve())
    if ckpt_path is None and not cfg.trainer.fast_dev_run:
        trainer.validate(lit, datamodule=datamodule, verbose=False)  # the curve starts at step 0
    trainer.fit(lit, datamodule=datamodule, ckpt_path=ckpt_path)
    if graceful.exit_code is not None:
        if not trainer.is_global_zero:  # rank 0 reports; a failing rank would get it killed
            return None
        log.warning(
            "Stopped by signal; resume with: python train.py resume=%s", cfg.paths.output_dir
        )
        raise SystemExit(graceful.exit_code)
    return finish(cfg, trainer, lit, datamodule)


def check_sampling(cfg: DictConfig) -> None:
    """The end-of-run sample's and every TextSamples callback's settings, checked by
    SamplingParams (the one place sampling values are checked) before anything is written;
    the sentence names the config key."""
    _sampling_key("sample.", functools.partial(sample_params, cfg))
    for name, node in (cfg.get("callbacks") or {}).items():
        cls = _target_class(node)
        if cls is not None and issubclass(cls, TextSamples):
            params = inspect.signature(cls).parameters
            settings = {k: params[k].default for k in SAMPLING_KEYS if k in params}
            settings.update({k: node[k] for k in SAMPLING_KEYS if k in node})
            _sampling_key(f"callbacks.{name}.", functools.partial(SamplingParams, **settings))


def _sampling_key(prefix: str, build: Any) -> None:
    """Run `build`; a SamplingError becomes a ConfigError naming the key under `prefix`."""
    try:
        build()
    except SamplingError as e:
        message = str(e)
        raise ConfigError(prefix + message if message.startswith(e.field) else message) from e


SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")


def _target_class(node: Any) -> type | None:
    """The class a callback node builds; None when it names none (instantiate reports that)."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        cls = hydra.utils.get_class(node._target_)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def sample_params(cfg: DictConfig) -> SamplingParams | None:
    """The end-of-run sample's settings (`sample.*`), checked; None when it is switched off."""
    sample = cfg.sample
    if sample.max_new_tokens <= 0:
        return None
    return SamplingParams(sample.max_new_tokens, sample.temperature, sample.top_k, seed=cfg.seed)


def build_module(
    cfg: DictConfig, meta: dict[str, Any], identity: dict[str, str] | None = None
) -> tuple[LitLM, dict[str, Any]]:
    """The LitLM of this run (vocab from the data's tokenizer, speed switches applied, the
    data's identity recorded in its checkpoints) and its resolved model config."""
    model_cfg = resolve_model_config(OmegaConf.to_container(cfg.model, resolve=True), meta)
    optim_cfg = OmegaConf.to_container(cfg.optim, resolve=True)
    lit = LitLM(
        model=model_cfg,
        optim=optim_cfg,
        total_steps=optim_cfg["schedule_steps"] or cfg.trainer.max_steps,
        nonfinite_loss=cfg.nonfinite_loss,
        identity=identity,
    )
    on_cuda = cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    apply_speed_settings(OmegaConf.to_container(cfg.speed, resolve=True), lit.model, on_cuda)
    log.info(
        "Model: %s parameters (d_model %d, %d layers, %d heads, vocab %s, context %d)",
        f"{lit.model.num_params():,}",
        model_cfg["d_model"],
        model_cfg["n_layers"],
        model_cfg["n_heads"],
        f"{model_cfg['vocab_size']:,}",
        model_cfg["context_length"],
    )
    return lit, model_cfg


def build_trainer(
    cfg: DictConfig, run_dir: RunDir, purge_step: int | None
) -> tuple[L.Trainer, GracefulStop]:
    """The Lightning Trainer with the configured callbacks and loggers, plus ParrotLM's own
    RNG-state and graceful-stop callbacks. purge_step: the step a resume continues from."""
    graceful = GracefulStop(str(run_dir.checkpoints))
    callbacks = [*instantiate_group(cfg.get("callbacks"), "a callback"), RNGState(), graceful]
    callbacks.append(NoEpochScalar())
    # ParrotLM's step line instead of Lightning's epoch bars, unless a bar is configured.
    if cfg.trainer.enable_progress_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(StepProgress())
    loggers = [
        instantiate(node, "a logger", **resume_kwargs(node, purge_step))
        for node in group_entries(cfg.get("logger"))
    ]
    plugins = [instantiate(cfg.checkpoint_io, "checkpoint_io")] if cfg.checkpoint_io else []
    trainer = instantiate(
        cfg.trainer,
        "the Lightning Trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=plugins,
        val_check_interval=cfg.val_every_n_steps * cfg.trainer.accumulate_grad_batches,
    )
    return trainer, graceful


def resume_kwargs(node: DictConfig, purge_step: int | None) -> dict[str, Any]:
    """`purge_step` for a logger that takes one (TensorBoard's, ParrotLM's CSVLogger), so a
    resumed run keeps its history before the checkpoint and drops what the killed run logged
    after it; nothing for a new run or a logger without it."""
    if purge_step is None:
        return {}
    from lightning.pytorch.loggers import TensorBoardLogger

    cls = _target_class(node)
    if cls is None:  # not a class: instantiate reports it with a sentence
        return {}
    # TensorBoardLogger hands purge_step to its SummaryWriter through **kwargs.
    takes_it = (
        issubclass(cls, TensorBoardLogger) or "purge_step" in inspect.signature(cls).parameters
    )
    return {"purge_step": purge_step} if takes_it else {}


def _covers(last_validation: dict[str, Any] | None, step: int) -> bool:
    """Whether a checkpoint's last validation is the one at its own step (saved after it)."""
    return last_validation is not None and last_validation.get("step") == step


def already_done(step: int, last_validation: dict[str, Any] | None) -> float | None:
    """A resume of a run already at trainer.max_steps: nothing is trained, logged or written;
    says so and returns the val loss of its validation at that step, if any (for sweepers)."""
    log.info(
        "This run is already at step %d = trainer.max_steps: nothing to train; pass "
        "trainer.max_steps=%d (or more) to train further.",
        step,
        2 * step,
    )
    if not _covers(last_validation, step):
        return None
    losses = [v for k, v in last_validation["metrics"].items() if k.startswith("val/loss")]
    return float(losses[0]) if losses else None


def finish(
    cfg: DictConfig, trainer: L.Trainer, lit: LitLM, datamodule: TokenDataModule
) -> float | None:
    """Log the final val loss, print the end-of-run sample and where the run's files are with
    the commands that come next; returns the val loss."""
    val_loss = latest_val_loss(trainer)
    if val_loss is not None:
        name = val_metric_names(trainer)[0]
        log.info("Final %s %.4f (ppl %.2f)", name, val_loss, math.exp(val_loss))
    params = sample_params(cfg)
    if trainer.is_global_zero and params is not None:
        text = sample_text(lit.model, datamodule.load_tokenizer(), cfg.sample.prompt, params)
        print(f"\n--- sample ---\n{text}\n--------------\n", flush=True)
    if trainer.is_global_zero:
        run_dir = RunDir(cfg.paths.output_dir)
        print(next_steps(run_dir, trainer.max_steps, best_checkpoint(trainer)), flush=True)
    return val_loss
