"""Typed schema for the composed Hydra config: a mistyped value or unknown key fails at start.

Hydra already refuses `key=value` for keys that do not exist; merging into this schema also
catches wrong types (`trainer.max_steps=abc`) and keys added with `+`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from parrot_lm.core.errors import ConfigError
from parrot_lm.model.config import GPTConfig


def _model_schema() -> type:
    """The `model:` section's schema, derived from GPTConfig so each field is declared once.

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


@dataclass
class OptimSchema:
    name: str = "adamw"
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    fused: bool | None = None
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    schedule_steps: int | None = None  # None = trainer.max_steps at the start of the run
    # optim=muon: torch.optim.Muon on the blocks' matrices (the rest keeps AdamW at `lr`)
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    muon_nesterov: bool = True
    muon_ns_steps: int = 5
    muon_weight_decay: float = 0.0


@dataclass
class DataSchema:
    name: str | None = None
    data_dir: str = "???"
    source: dict[str, Any] | None = None
    tokenizer: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None
    val_source: dict[str, Any] | None = None
    val_fraction: float = 0.05
    val_stride: int | None = None  # validation windows' stride (None: the context, no overlap)
    context_length: int = 1024
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0


@dataclass
class TrainerSchema:
    """The Trainer arguments ParrotLM's configs set, typed; other Trainer arguments pass through."""

    _target_: str = "lightning.pytorch.Trainer"
    default_root_dir: str | None = None
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = 1000
    max_epochs: int | None = -1
    accumulate_grad_batches: int = 1
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = None
    deterministic: Any = False
    benchmark: bool | None = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    fast_dev_run: Any = False
    use_distributed_sampler: bool = False


@dataclass
class SpeedSchema:
    compile: bool | None = None  # None: on when training on CUDA
    compile_mode: str | None = None
    compile_backend: str = "inductor"
    matmul_precision: str = "high"
    sdpa_backend: str = "auto"
    activation_checkpointing: bool = False


@dataclass
class SampleSchema:
    prompt: str = "Once upon a time"
    max_new_tokens: int = 120
    temperature: float = 0.8
    top_k: int | None = 40


@dataclass
class TrainSchema:
    task_name: str = "train"
    seed: int = 1337
    resume: str | None = None
    ckpt_path: str | None = None
    val_every_n_steps: int = 100
    ckpt_every_n_steps: int = 500
    nonfinite_loss: str = "stop"
    checkpoint_io: Any = None
    model: ModelSchema = field(default_factory=ModelSchema)
    optim: OptimSchema = field(default_factory=OptimSchema)
    data: DataSchema = field(default_factory=DataSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    sample: SampleSchema = field(default_factory=SampleSchema)
    speed: SpeedSchema = field(default_factory=SpeedSchema)
    logger: Any = None
    callbacks: Any = None
    paths: Any = None


def validate_config(cfg: DictConfig) -> DictConfig:
    """Merge the composed config into the schema; any problem becomes one ConfigError sentence."""
    schema = OmegaConf.structured(TrainSchema)
    OmegaConf.set_struct(schema.trainer, False)  # other Trainer kwargs may be added with `+`
    try:
        merged = OmegaConf.merge(schema, cfg)
        # Resolve now so that bad interpolations and types inside them fail here, not mid-run.
        for key in ("model", "optim", "data", "trainer", "sample", "speed"):
            OmegaConf.to_container(merged[key], resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"Invalid config at '{e.full_key}': {str(e.msg).splitlines()[0]}") from e
    if merged.nonfinite_loss not in ("stop", "skip"):
        raise ConfigError(
            f"nonfinite_loss must be 'stop' or 'skip', got {merged.nonfinite_loss!r}."
        )
    if merged.trainer.val_check_interval is not None:
        raise ConfigError(
            "Set val_every_n_steps (in optimizer steps) instead of trainer.val_check_interval."
        )
    return merged
