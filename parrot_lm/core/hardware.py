"""What this machine can do fast, so we can warn before a run crawls."""

from __future__ import annotations

import ctypes
import functools
import logging
import platform

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


# What each accelerator Lightning registers needs, and the check that found it missing, for
# check_accelerator's sentence; any other registered accelerator gets a generic one.
ACCELERATOR_NEEDS = {
    "gpu": ("a CUDA GPU", "torch.cuda.is_available() is False"),
    "cuda": ("a CUDA GPU", "torch.cuda.is_available() is False"),
    "mps": ("Apple's MPS (a Mac GPU)", "torch.backends.mps.is_available() is False"),
    "tpu": ("a TPU", "torch_xla finds none"),
}


def check_accelerator(accelerator: str, group: str | None = None) -> None:
    """Refuse a `trainer.accelerator` this machine lacks, or one Lightning does not know, with
    one sentence (ConfigError), before the Trainer is built and before the run dir gets its
    files: Lightning's own refusal ("No supported gpu backend found!") says neither which
    setting asked for it nor what to do.

    `group`: the trainer config option that set the accelerator (`trainer=gpu`), named in the
    sentence and dropped in its advice; None when the accelerator was set directly (or is a
    resumed run's), whose advice is then trainer.accelerator=cpu. Availability is Lightning's
    own test (its AcceleratorRegistry; `gpu` is CUDA or MPS, as Lightning picks), so the check
    refuses exactly what the Trainer would.
    """
    name = str(accelerator)
    if name == "auto":
        return
    from lightning.pytorch.accelerators import AcceleratorRegistry  # Lightning loads slowly

    registered = AcceleratorRegistry.available_accelerators()
    known = sorted({"auto", "gpu", *registered})
    if name not in known:
        raise ConfigError(
            f"trainer.accelerator={name} is not an accelerator Lightning knows; use one of "
            f"{', '.join(known)}."
        )
    backends = [n for n in ("cuda", "mps") if n in registered] if name == "gpu" else [name]
    if any(AcceleratorRegistry[n]["accelerator"].is_available() for n in backends):
        return
    needs, check = ACCELERATOR_NEEDS.get(
        name, (f"a {name} device", f"Lightning's {name} accelerator finds none")
    )
    setting = (
        f"trainer={group} (trainer.accelerator={name})" if group else f"trainer.accelerator={name}"
    )
    advice = f"drop trainer={group}" if group else "set trainer.accelerator=cpu (or auto)"
    raise ConfigError(
        f"{setting} needs {needs}, and none is visible here ({check}); {advice} to train on "
        "the CPU."
    )


# glibc's mallopt parameters (malloc.h) and the value both are set to: the largest a C int holds.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _KEEP_UP_TO = -1, -3, 2**31 - 1


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process for the next allocation, instead of
    handing it back to the OS. Returns whether it applied (False without glibc).

    By default glibc serves a large block (activations, logits, gradients: megabytes each) by
    mmap and unmaps it when freed, or trims freed memory at the top of its heap; the next
    training step then touches fresh pages, and every 4 KiB page costs a fault in the kernel
    (`make bench` counts them per step, with and without this). With both thresholds at their
    maximum (mallopt(3), M_MMAP_THRESHOLD and M_TRIM_THRESHOLD; the PyTorch CPU tuning guide's
    jemalloc/tcmalloc advice fixes the same thing by preloading another allocator) the blocks
    are reused and the resident memory stays at the step's peak. Process-wide and once per
    process; forked workers inherit it. Raises nothing: without glibc it is a no-op.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; setting the mmap threshold also stops glibc from moving it
    # (and the trim threshold) with each freed block.
    applied = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO) == 1
    applied = libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1 and applied
    log.debug("glibc malloc keeps freed memory for reuse: %s", applied)
    return applied
