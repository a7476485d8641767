"""Typed schema for the composed Hydra config: a mistyped or out-of-range value, or an unknown
key, fails at start with one sentence, before anything is written.

Hydra already refuses `key=value` for keys that do not exist; merging into this schema also
catches wrong types (`trainer.max_steps=abc`) and keys added with `+`. Then every field's range
is checked: each bound is declared once, next to its field (`checked(default, integer(ge=1))`,
core/checks.py), and the few checks that span fields (the tokenizer, the callbacks, the
model's shape) are listed in `CROSS_CHECKS`. Every entry point that composes a training config
(train, prepare) runs them through `validate_config`; evaluate has `validate_evaluate_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from parrot_lm.core.checks import (
    ListOf,
    OneOf,
    check_fields,
    checked,
    integer,
    number,
    plain,
    show,
)
from parrot_lm.core.errors import ConfigError
from parrot_lm.data.prepare import VAL_FRACTION, check_source_spec, check_tokenizer_spec
from parrot_lm.model.config import GPTConfig
from parrot_lm.optim import OPTIMIZERS

# ---- the schema ---------------------------------------------------------------------------------


def _model_schema() -> type:
    """The `model:` section's schema, derived from GPTConfig so each field is declared once
    (GPTConfig's __post_init__ holds the model's range checks; `check_model` runs them).

    The one difference: `vocab_size` may be null in a config (training fills it in from the
    prepared data's tokenizer), so the schema types it `int | None` with a null default.
    """
    hints = typing.get_type_hints(GPTConfig)
    specs = []
    for f in dataclasses.fields(GPTConfig):
        if f.name == "vocab_size":
            specs.append((f.name, int | None, field(default=None)))
        else:
            specs.append((f.name, hints[f.name], field(default=f.default)))
    return make_dataclass("ModelSchema", specs)


ModelSchema = _model_schema()

MATMUL_PRECISIONS = ("highest", "high", "medium")
SDPA_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
NONFINITE_LOSS = ("stop", "skip")
MAX_SEED = 2**32 - 1  # Lightning's seed_everything (numpy's range)


@dataclass
class OptimSchema:
    name: str = checked("adamw", OneOf(OPTIMIZERS))
    lr: float = checked(3e-4, number(gt=0))
    betas: list[float] = checked(
        default_factory=lambda: [0.9, 0.95], check=ListOf(number(ge=0, lt=1), 2)
    )
    eps: float = checked(1e-8, number(gt=0))
    weight_decay: float = checked(0.1, number(ge=0))
    fused: bool | None = None
    warmup_steps: int = checked(2000, integer(ge=0))
    min_lr_ratio: float = checked(0.1, number(ge=0, le=1))
    grad_clip: float | None = checked(1.0, number(gt=0))  # null: no clipping
    # None = trainer.max_steps at the start of the run
    schedule_steps: int | None = checked(None, integer(ge=1))
    # optim=muon: torch.optim.Muon on the blocks' matrices (the rest keeps AdamW at `lr`)
    muon_lr: float = checked(0.02, number(gt=0))
    muon_momentum: float = checked(0.95, number(ge=0, lt=1))
    muon_nesterov: bool = True
    muon_ns_steps: int = checked(5, integer(ge=1))
    muon_weight_decay: float = checked(0.0, number(ge=0))


@dataclass
class DataSchema:
    name: str | None = None
    data_dir: str = "???"
    source: dict[str, Any] | None = None  # see check_data_specs
    tokenizer: dict[str, Any] | None = None  # see check_data_specs
    filters: dict[str, Any] | None = None
    val_source: dict[str, Any] | None = None
    val_fraction: float = checked(0.05, VAL_FRACTION)
    # validation windows' stride (None: the context, no overlap); at most the context
    val_stride: int | None = checked(None, integer(ge=1))
    context_length: int = checked(1024, integer(ge=1))
    batch_size: int = checked(16, integer(ge=1))
    num_workers: int = checked(0, integer(ge=0))
    seed: int = checked(0, integer(ge=0, le=MAX_SEED))
    overfit_batches: int = checked(0, integer(ge=0))  # debug=overfit: train on this many batches


@dataclass
class TrainerSchema:
    """The Trainer arguments ParrotLM's configs set, typed; other Trainer arguments pass through."""

    _target_: str = "lightning.pytorch.Trainer"
    default_root_dir: str | None = None
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = checked(1, integer(ge=1))
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = 1000  # >= 1 unless fast_dev_run: see check_max_steps
    max_epochs: int | None = checked(-1, integer(ge=-1))
    accumulate_grad_batches: int = checked(1, integer(ge=1))
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = checked(None, integer(ge=1))
    limit_val_batches: Any = None  # see check_limit_val_batches
    num_sanity_val_steps: int = checked(0, integer(ge=-1))
    log_every_n_steps: int = checked(10, integer(ge=1))
    gradient_clip_val: float | None = checked(None, number(ge=0))
    deterministic: Any = False
    benchmark: bool | None = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = False  # ParrotLM logs its own one-line model summary
    fast_dev_run: Any = False
    use_distributed_sampler: bool = False


@dataclass
class SpeedSchema:
    compile: bool | None = None  # None: on when training on CUDA
    compile_mode: str | None = checked(None, OneOf(COMPILE_MODES))
    compile_backend: str = "inductor"
    matmul_precision: str = checked("high", OneOf(MATMUL_PRECISIONS))
    sdpa_backend: str = checked("auto", OneOf(SDPA_BACKENDS))
    activation_checkpointing: bool = False
    reuse_freed_memory: bool | None = None  # None: on when training on the CPU


@dataclass
class SampleSchema:
    """The end-of-run sample; 0 new tokens switches it off. Temperature and top_k are checked
    by SamplingParams, as everywhere that samples (training.run.check_sampling)."""

    prompt: str = "Once upon a time"
    max_new_tokens: int = checked(120, integer(ge=0))
    temperature: float = 0.8
    top_k: int | None = 40


@dataclass
class TrainSchema:
    task_name: str = "train"
    name: str | None = None  # the run dir's name (runs/run_dir.py check_run_name)
    seed: int = checked(1337, integer(ge=0, le=MAX_SEED))
    resume: str | None = None
    ckpt_path: str | None = None
    val_every_n_steps: int = checked(100, integer(ge=1))
    ckpt_every_n_steps: int = checked(500, integer(ge=1))
    ckpt_keep_last_k: int | None = checked(None, integer(ge=1))  # null: keep every step file
    nonfinite_loss: str = checked("stop", OneOf(NONFINITE_LOSS))
    checkpoint_io: Any = None
    model: ModelSchema = field(default_factory=ModelSchema)
    optim: OptimSchema = field(default_factory=OptimSchema)
    data: DataSchema = field(default_factory=DataSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    sample: SampleSchema = field(default_factory=SampleSchema)
    speed: SpeedSchema = field(default_factory=SpeedSchema)
    logger: Any = None  # see check_plugin_groups
    callbacks: Any = None
    paths: Any = None


@dataclass
class EvaluateSchema:
    """conf/evaluate.yaml (scripts/evaluate.py); the stride's upper bound is the model's
    context, checked once the checkpoint is loaded."""

    ckpt: str = "???"
    outputs_dir: str = "outputs"  # where ckpt=latest and ckpt=<run name> look
    tokenizer_dir: str | None = None
    stride: int | None = checked(None, integer(ge=1))
    batch_size: int = checked(8, integer(ge=1))
    max_tokens: int | None = checked(None, integer(ge=1))  # null: every token
    device: str = "auto"
    output: str | None = None
    eval_set: dict[str, Any] = field(default_factory=dict)


# ---- the checks that span fields ---------------------------------------------------------------


def check_model(cfg: DictConfig) -> None:
    """GPTConfig's own checks (shape, norms, positive sizes), with the vocab that training
    fills in from the data standing in for a null `model.vocab_size`."""
    model = plain(cfg.model)
    if model["vocab_size"] is None:
        model["vocab_size"] = 1
    try:
        GPTConfig(**model)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


def check_max_steps(cfg: DictConfig) -> None:
    steps = cfg.trainer.max_steps
    if steps < 1 and not cfg.trainer.fast_dev_run:
        raise ConfigError(
            f"trainer.max_steps must be an integer >= 1 (the learning-rate schedule is defined "
            f"in steps), got {steps}."
        )


def check_limit_val_batches(cfg: DictConfig) -> None:
    limit = plain(cfg.trainer.limit_val_batches)
    if limit is None or integer(ge=0).allows(limit) or number(ge=0, le=1).allows(limit):
        return
    raise ConfigError(
        "trainer.limit_val_batches must be null (the whole val split), an integer >= 0 "
        f"(batches) or a number in [0, 1] (a fraction), got {show(limit)}."
    )


def check_val_stride(cfg: DictConfig) -> None:
    stride, context = cfg.data.val_stride, cfg.data.context_length
    if stride is not None and stride > context:
        raise ConfigError(
            f"data.val_stride must be an integer in [1, data.context_length = {context}], "
            f"got {stride}."
        )


def check_data_specs(cfg: DictConfig) -> None:
    """A corpus built from `data.source` needs counts in range and a tokenizer preparation can
    build (the data stage's own checks, which prepare runs too)."""
    if cfg.data.source is not None:
        check_source_spec(plain(cfg.data.source))
        if cfg.data.val_source is not None:
            check_source_spec(plain(cfg.data.val_source), "data.val_source")
        check_tokenizer_spec(plain(cfg.data.tokenizer))


def _plugin_entries(cfg: DictConfig, group: str) -> list[tuple[str, DictConfig]]:
    """The switched-on entries of `callbacks` or `logger` (a null entry is switched off)."""
    node = cfg.get(group)
    if node is None:
        return []
    if not isinstance(node, DictConfig):
        raise ConfigError(
            f"{group} must be a mapping of names to nodes with a _target_, got {show(plain(node))}."
        )
    entries = []
    for name in node:
        entry = node[name]
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise ConfigError(
                f"{group}.{name} must be a node with a _target_ (or null to switch it off), "
                f"got {show(plain(entry))}."
            )
        entries.append((str(name), entry))
    return entries


def check_plugin_groups(cfg: DictConfig) -> None:
    """Every `callbacks.<name>` and `logger.<name>` is a node to build, or null (off)."""
    for group in ("callbacks", "logger"):
        _plugin_entries(cfg, group)


def check_val_check_interval(cfg: DictConfig) -> None:
    if cfg.trainer.val_check_interval is not None:
        raise ConfigError(
            "Set val_every_n_steps (in optimizer steps) instead of trainer.val_check_interval."
        )


# The checks that span fields, after every field's own range is checked.
CROSS_CHECKS: tuple[Callable[[DictConfig], None], ...] = (
    check_val_check_interval,
    check_max_steps,
    check_limit_val_batches,
    check_val_stride,
    check_data_specs,
    check_plugin_groups,
)


# ---- validation ---------------------------------------------------------------------------------


def _merge(schema_cls: type, cfg: DictConfig, sections: Sequence[str]) -> DictConfig:
    schema = OmegaConf.structured(schema_cls)
    if "trainer" in schema:
        OmegaConf.set_struct(schema.trainer, False)  # other Trainer kwargs may be added with `+`
    try:
        merged = OmegaConf.merge(schema, cfg)
        # Resolve now so that bad interpolations and types inside them fail here, not mid-run.
        for key in sections:
            OmegaConf.to_container(merged[key], resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(config_error_sentence(e)) from e
    return merged


# OmegaConf's names for the types a value could not be converted to, as a sentence says them.
_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


def config_error_sentence(error: OmegaConfBaseException) -> str:
    """OmegaConf's refusal as one sentence naming the key: `trainer.max_steps must be an
    integer, got 'abc'.` for a value of the wrong type, `optim.lrr is not a key of optim (did
    you mean optim.lr?)...` for a key added with `+` that the schema lacks, OmegaConf's own
    first line otherwise."""
    message = str(error.msg).splitlines()[0]
    schema = getattr(error, "object_type", None)
    if isinstance(error, ConfigKeyError) and dataclasses.is_dataclass(schema) and error.full_key:
        section, _, key = str(error.full_key).rpartition(".")
        fields = [f.name for f in dataclasses.fields(schema)]
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {section + '.' if section else ''}{close[0]}?)" if close else ""
        return (
            f"{error.full_key} is not a key of {section or 'the config'}{hint}; ParrotLM reads "
            f"only {', '.join(fields)} there."
        )
    wrong_type = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", message)
    if wrong_type and wrong_type.group(2) in _TYPE_WORDS:
        value, kind = wrong_type.groups()
        return f"{error.full_key} must be {_TYPE_WORDS[kind]}, got {value!r}."
    not_bool = re.match(r"Value '(.*)' is not a valid bool", message)
    if not_bool:
        return f"{error.full_key} must be true or false, got {not_bool.group(1)!r}."
    return f"Invalid config at '{error.full_key}': {message}"


def validate_config(cfg: DictConfig, cross_checks: bool = True) -> DictConfig:
    """Merge the composed training config into the schema and check every value's range; any
    problem becomes one ConfigError sentence naming the key, the value and what is allowed.

    cross_checks=False checks each value on its own only (a resume command, whose partial
    entries merge into the saved run config that is then checked in full).
    """
    merged = _merge(TrainSchema, cfg, ("model", "optim", "data", "trainer", "sample", "speed"))
    try:
        if cross_checks:
            check_model(merged)  # first: data.context_length follows model.context_length
        check_fields(merged, TrainSchema)
        for check in CROSS_CHECKS if cross_checks else ():
            check(merged)
    except OmegaConfBaseException as e:  # an interpolation in callbacks/logger that fails
        raise ConfigError(config_error_sentence(e)) from e
    return merged


def validate_evaluate_config(cfg: DictConfig) -> DictConfig:
    """conf/evaluate.yaml merged into EvaluateSchema, each value range-checked."""
    merged = _merge(EvaluateSchema, cfg, ())
    check_fields(merged, EvaluateSchema)
    return merged


# Where a run's files are, made absolute when it starts, so its saved config means the same
# directories from any working directory (resume, evaluate). Source paths (data.source.path and
# the like) stay as given: they are part of the corpus's config hash, and what a resume reads
# is checked by the data's identity (runs/identity.py).
ABSOLUTE_KEYS = ("data.data_dir", "paths.root_dir", "paths.data_dir", "paths.log_dir")


def absolute_paths(cfg: DictConfig, base: Path | None = None) -> DictConfig:
    """`cfg` with ABSOLUTE_KEYS made absolute against `base` (default: the working directory)
    and `~` expanded; each is resolved first (interpolations such as `${paths.data_dir}/x`)."""
    base = Path.cwd() if base is None else Path(base)
    out = cfg.copy()
    for key in ABSOLUTE_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str):
            path = Path(value).expanduser()
            OmegaConf.update(out, key, str(path if path.is_absolute() else base / path))
    return out
