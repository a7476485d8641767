"""What this machine can do fast, so we can warn before a run crawls."""

from __future__ import annotations

import functools
import logging

import torch

from parrot_lm.core.errors import ConfigError

log = logging.getLogger(__name__)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matmul (AVX512-BF16 or AMX); else bf16 is emulated."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def warn_if_slow_precision(precision: str, accelerator: str) -> bool:
    """Warn (once, one sentence) when bf16 would run on a CPU without bf16 matmul support."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision.startswith("bf16") and not cpu_has_fast_bf16():
        log.warning(
            "trainer.precision=%s on a CPU without bf16 matmul support will be far slower "
            "(measured on a 2-core AVX2 CPU: matmul ~30x, a deep_narrow training step ~13x); "
            "use trainer.precision=32-true on CPU.",
            precision,
        )
        return True
    return False


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for a `device=` setting: `auto` is the GPU when there is one, else the
    CPU; `cpu`, `cuda`, `cuda:<i>`, `mps` must exist on this machine.

    Raises ConfigError (one sentence) for a name torch does not know or a device this machine
    or this PyTorch build does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except (RuntimeError, TypeError) as e:
        raise ConfigError(
            f"device={name} is not a device name; use auto, cpu, cuda or cuda:<index>."
        ) from e
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = (
                "this PyTorch build has no CUDA"
                if torch.version.cuda is None
                else "no GPU is visible"
            )
            raise ConfigError(f"device={name}, but {why} here; use device=cpu (or auto).")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name}, but this machine has {count} GPU(s) (cuda:0 to "
                f"cuda:{count - 1}); pick one of those, or device=auto."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name}, but MPS is not available here; use device=cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={name} is not supported; use auto, cpu, cuda or cuda:<index>.")
    return device
