"""Model FLOPs per token and the hardware's measured peak, for MFU.

MFU = achieved model FLOP/s / peak FLOP/s, where the model's FLOPs per trained token are
6N (forward and backward through the weights, the embedding lookup excluded) plus the
attention scores and mixing, 6 * n_layers * context * d_model (PaLM, appendix B, with the
causal half not discounted).

The peak MFU is measured against is stable and stated (`peak_flops`): on a GPU whose datasheet
peak is known, the datasheet's dense figure for the training dtype; elsewhere the best of
several dense matmul timings, measured once per device, dtype and thread count and cached
(`$PARROT_CACHE_DIR` or `~/.cache/parrot_lm/peak_flops.json`), so a run started on a busy
machine does not measure a low peak and report an MFU above 100%.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from parrot_lm.core.io import atomic_write_text
from parrot_lm.model.config import GPTConfig


def non_embedding_params(cfg: GPTConfig) -> int:
    """Parameters that take part in matmuls: blocks and the output head."""
    kv_dim = cfg.n_kv_heads * cfg.head_dim
    attn = cfg.d_model * (cfg.d_model + 2 * kv_dim) + cfg.d_model * cfg.d_model
    mlp = 3 * cfg.d_model * cfg.d_ff
    return cfg.n_layers * (attn + mlp) + cfg.d_model * cfg.vocab_size


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward)."""
    t = seq_len or cfg.context_length
    return 6.0 * non_embedding_params(cfg) + 6.0 * cfg.n_layers * t * cfg.d_model


def measure_peak_flops(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    size: int = 1024,
    repeats: int = 5,
) -> float:
    """Dense (size x size) @ (size x size) matmul FLOP/s: the median of `repeats` timings."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    n = 4 if device.type == "cpu" else 50  # matmuls per timing

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            a @ b
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return n * 2.0 * size**3 / times[len(times) // 2]


# Dense (no sparsity) tensor-core peaks from NVIDIA's datasheets, FLOP/s (half the "with
# sparsity" figures; float32 is TF32). A part's PCIe or NVL card comes before the part itself,
# which names the SXM module: the first name found in the device's name wins.
DATASHEET_PEAKS = {
    "H200 NVL": {torch.bfloat16: 835e12, torch.float16: 835e12, torch.float32: 417.5e12},
    "H200": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 494.5e12},
    "H100 NVL": {torch.bfloat16: 835e12, torch.float16: 835e12, torch.float32: 417.5e12},
    "H100 PCIe": {torch.bfloat16: 756e12, torch.float16: 756e12, torch.float32: 378e12},
    "H100": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 494.5e12},
    "A100": {torch.bfloat16: 312e12, torch.float16: 312e12, torch.float32: 156e12},
    "V100-PCIE": {torch.float16: 112e12, torch.float32: 14e12},
    "V100": {torch.float16: 125e12, torch.float32: 15.7e12},
}


def datasheet_peak(device_name: str, dtype: torch.dtype) -> float | None:
    """The dense datasheet peak in FLOP/s of a GPU named as `torch.cuda.get_device_name` names
    it ("NVIDIA H200", "NVIDIA A100-SXM4-80GB"), in `dtype`; None for a part or dtype not in
    DATASHEET_PEAKS. No digit may follow the part's name: an "RTX A1000" is no A100."""
    for part, peaks in DATASHEET_PEAKS.items():
        if re.search(rf"{part}(?!\d)", device_name) and dtype in peaks:
            return peaks[dtype]
    return None


@dataclass(frozen=True)
class Peak:
    """A device's peak FLOP/s for MFU, and where the figure comes from (shown with MFU)."""

    flops: float
    source: str  # e.g. "datasheet NVIDIA H200 bf16" or "measured fp32 matmul, cpu, 2 threads"


def _cache_file() -> Path:
    root = os.environ.get("PARROT_CACHE_DIR") or Path.home() / ".cache" / "parrot_lm"
    return Path(root) / "peak_flops.json"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str) -> str:
    """A GPU's name as `torch.cuda.get_device_name` gives it, or the CPU's model name."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()


def peak_flops(device: torch.device | str, dtype: torch.dtype = torch.float32) -> Peak:
    """The peak FLOP/s to measure MFU against on `device` in `dtype` (see the module doc).

    Without a datasheet figure, each call measures once more and the cache keeps the best
    figure ever seen for this device, dtype and thread count: a measurement on a busy machine
    never lowers it.
    """
    device = torch.device(device)
    name = device_name(device)
    dtype_name = str(dtype).removeprefix("torch.")
    datasheet = datasheet_peak(name, dtype) if device.type == "cuda" else None
    if datasheet is not None:
        return Peak(datasheet, f"datasheet {name} {dtype_name}")
    threads = torch.get_num_threads()
    key = f"{device.type}|{name}|{dtype_name}|{threads}"
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    measured = measure_peak_flops(device, dtype, 4096 if device.type == "cuda" else 1024, 3)
    cached = known.get(key)
    best = max(measured, cached) if isinstance(cached, int | float) else measured
    if best != cached:
        try:
            atomic_write_text(cache, json.dumps({**known, key: best}, indent=1) + "\n")
        except Exception:  # an unwritable cache only means a lower figure may be kept
            pass
    where = f"{name}, {threads} threads" if device.type == "cpu" else name
    return Peak(float(best), f"best measured {dtype_name} matmul, {where}")
