"""A few real optimizer steps on random tokens: the step time, tokens/s and MFU this device
gives the configured model and batch, and the run's projected wall time. Nothing is saved."""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from parrot_lm.core.errors import ConfigError
from parrot_lm.model import GPTConfig
from parrot_lm.training.console import quiet_lightning
from parrot_lm.training.flops import Peak, peak_flops
from parrot_lm.training.lit_module import LitLM
from parrot_lm.training.speed import apply_speed_settings


@dataclass(frozen=True)
class Probe:
    """What the timed steps measured (seconds, tokens/s, a fraction of the peak)."""

    step_s: float  # mean wall time of one optimizer step
    tokens_per_s: float
    mfu: float
    peak: Peak
    peak_memory: int | None  # bytes, CUDA's allocator peak; None on CPU (not measured)


def device_of(trainer: DictConfig, strict: bool = True) -> torch.device | None:
    """The device train.py's Trainer would use for `trainer.accelerator`; a GPU asked for on a
    machine without one is None (counts only) unless `strict` (the probe needs it)."""
    accelerator = str(trainer.accelerator)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        if not strict:
            return None
        raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU.")
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The matmul dtype of Lightning's mixed precision settings, None for full fp32."""
    precision = str(precision)
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


class StepTimer(L.Callback):
    """The wall time of the optimizer steps after `warmup` untimed ones."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.start: float | None = None
        self.end: float | None = None
        self.timed = 0
        self._last_step = 0

    def on_train_batch_end(self, trainer: L.Trainer, *_args: object) -> None:
        if trainer.global_step == self._last_step:
            return  # a micro-batch inside gradient accumulation
        self._last_step = trainer.global_step
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if trainer.global_step == self.warmup:
            self.start = now
        elif trainer.global_step > self.warmup:
            self.end, self.timed = now, trainer.global_step - self.warmup


def run_probe(
    cfg: DictConfig,
    gpt_cfg: GPTConfig,
    flops_per_token: float,
    steps: int = 5,
    warmup: int = 2,
) -> Probe:
    """Time `steps` optimizer steps after `warmup` untimed ones (allocation, kernel choice,
    compilation), trained as train.py trains them: ParrotLM's LightningModule in a Lightning
    Trainer with the run's precision, accumulation and clipping, so the loop's own cost per
    step is in the figure. The data are random tokens in memory; no logger, no checkpoint,
    nothing written."""
    quiet_lightning()  # its start-up lines say nothing about the plan
    device = device_of(cfg.trainer)
    torch.manual_seed(0)
    batch, seq = int(cfg.data.batch_size), int(cfg.data.context_length)
    accumulate = int(cfg.trainer.accumulate_grad_batches)
    total = warmup + steps
    tokens = torch.randint(0, gpt_cfg.vocab_size, (total * accumulate * batch, seq + 1))
    loader = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=batch)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    lit = LitLM(model=gpt_cfg.to_dict(), optim=optim, total_steps=total)
    apply_speed_settings(
        OmegaConf.to_container(cfg.speed, resolve=True), lit.model, device.type == "cuda"
    )
    timer = StepTimer(warmup, device)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=cfg.trainer.precision,
            max_steps=total,
            accumulate_grad_batches=accumulate,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[timer],
            default_root_dir=scratch,
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with warnings.catch_warnings():  # no val loader on purpose: the probe times training
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            trainer.fit(lit, train_dataloaders=loader)
    if timer.start is None or timer.end is None or timer.timed == 0:
        raise ConfigError("The probe could not time any optimizer step; run with probe=false.")
    step_s = (timer.end - timer.start) / timer.timed
    tokens_per_s = batch * seq * accumulate / step_s
    dtype = autocast_dtype(cfg.trainer.precision)
    peak = peak_flops(device, dtype or torch.float32)
    memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return Probe(step_s, tokens_per_s, tokens_per_s * flops_per_token / peak.flops, peak, memory)


def device_memory(device: torch.device) -> int:
    """Bytes of memory the device has: the GPU's total, or the machine's RAM (/proc/meminfo)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
