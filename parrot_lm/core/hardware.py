"""What this machine can do fast, so we can warn before a run crawls."""

from __future__ import annotations

import functools
import logging

import torch

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
    """`auto`: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
