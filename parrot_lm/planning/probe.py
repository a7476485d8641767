"""A few real optimizer steps on random tokens: the step time, tokens/s and MFU this device
gives the configured model and batch, and the run's projected wall time. Nothing is saved."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import ConfigError
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.optim import build_optimizer
from parrot_lm.training.flops import Peak, peak_flops
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


def run_probe(
    cfg: DictConfig,
    gpt_cfg: GPTConfig,
    flops_per_token: float,
    steps: int = 5,
    warmup: int = 2,
) -> Probe:
    """Time `steps` optimizer steps after `warmup` untimed ones (allocation, kernel choice,
    compilation), each as training runs it: `accumulate_grad_batches` forward/backward passes
    of a micro-batch, gradient clipping, the optimizer step, gradients freed."""
    device = device_of(cfg.trainer)
    torch.manual_seed(0)
    model = GPT(gpt_cfg).to(device).train()
    apply_speed_settings(
        OmegaConf.to_container(cfg.speed, resolve=True), model, device.type == "cuda"
    )
    optim = build_optimizer(model, OmegaConf.to_container(cfg.optim, resolve=True))
    dtype = autocast_dtype(cfg.trainer.precision)
    batch, seq = int(cfg.data.batch_size), int(cfg.data.context_length)
    accumulate = int(cfg.trainer.accumulate_grad_batches)
    clip = cfg.optim.grad_clip
    tokens = torch.randint(0, gpt_cfg.vocab_size, (batch, seq + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        for _ in range(accumulate):
            cast = torch.autocast(device.type, dtype) if dtype else contextlib.nullcontext()
            with cast:
                logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()) / accumulate
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip) if clip else float("inf"))
        optim.step()
        optim.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    step_s = (time.perf_counter() - start) / steps
    tokens_per_s = batch * seq * accumulate / step_s
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
