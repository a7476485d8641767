"""Training throughput: ParrotLM (Lightning Trainer + LitLM + TokenDataModule) against a bare
PyTorch loop on the same model, data, optimizer and schedule, measured pair by pair.

Per model: tokens/s of each (median over repeats, after warm-up steps), their ratio, achieved
FLOP/s and MFU against a dense matmul peak measured in the same run, the share of step time
spent outside the step (data fetch + loop overhead; an upper bound on waiting for data), and
peak memory.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F

from parrot_lm.data.datamodule import TokenDataModule
from parrot_lm.model import GPTConfig
from parrot_lm.optim import build_optimizer, build_scheduler
from parrot_lm.training.console import quiet_lightning
from parrot_lm.training.flops import device_name, flops_per_token, measure_peak_flops
from parrot_lm.training.lit_module import LitLM
from parrot_lm.training.speed import apply_speed_settings

OPTIM = dict(
    name="adamw",
    lr=1e-3,
    betas=[0.9, 0.95],
    eps=1e-8,
    weight_decay=0.1,
    fused=None,
    warmup_steps=10,
    min_lr_ratio=0.1,
    grad_clip=1.0,
)


# conf/model shapes at their default batch (deep_narrow at batch 1 on CPU: ~4 s per step).
TRAIN_MODELS = {
    "tiny": (
        dict(vocab_size=2048, context_length=128, d_model=128, n_layers=4, n_heads=4, d_ff=352),
        16,
    ),
    "deep_narrow": (
        dict(vocab_size=50257, context_length=1024, d_model=320, n_layers=16, n_heads=8, d_ff=854),
        1,
    ),
}
# On a GPU: the bf16 + torch.compile table, at batches that fill an H200.
TRAIN_MODELS_GPU = {
    "deep_narrow": (TRAIN_MODELS["deep_narrow"][0], 32),
    "gpt2_small": (
        dict(
            vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12, d_ff=2048
        ),
        16,
    ),
}
# Measured steps and pairs per model (others: 10 steps, 3 pairs).
# Many short pairs: on a shared 2-core VM one pair's ratio lands anywhere in about 0.95-1.13
# (12 pairs of the tiny model, 2026-11-21), so the median of 8 pairs still moved by +-3%.
MEASURE = {"tiny": (20, 16), "deep_narrow": (4, 6)}
TRAIN_QUICK = {
    "quick": (
        dict(vocab_size=2048, context_length=32, d_model=32, n_layers=2, n_heads=2, d_ff=64),
        4,
    )
}


class StepTimer(L.Callback):
    """Each measured step's wall time, start to next start (the next batch and Lightning's loop
    included), and the time spent between steps (fetching the next batch, running the loop)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.first: float | None = None
        self.starts: list[float] = []
        self.end = 0.0
        self.between = 0.0
        self._last_end: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if trainer.global_step >= self.warmup:
            if self.starts and self._last_end is not None:
                self.between += now - self._last_end
            self.starts.append(now)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # the step's kernels have run, not just been queued
        self._last_end = self.end = time.perf_counter()

    def step_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, [*self.starts[1:], self.end], strict=True)]

    def warmup_seconds(self) -> float:
        """Wall time of the warm-up steps (on a GPU, torch.compile's compiling runs in them)."""
        return self.starts[0] - self.first if self.first is not None and self.starts else 0.0


class Run(NamedTuple):
    """One timed training run."""

    tokens_per_s: float  # at the median measured step
    wait_fraction: float  # time between steps (ParrotLM) or fetching data (bare) / step time
    warmup_s: float  # the warm-up steps' wall time, seconds
    fused: bool  # whether the AdamW it built runs fused (one kernel for all tensors)


def median_rate(step_seconds: list[float], tokens_per_step: int) -> float:
    """Tokens/s at the median step time: a burst of load from elsewhere on the machine moves a
    mean over the window, not the median step."""
    return tokens_per_step / statistics.median(step_seconds)


def _datamodule(data_dir: Path, context: int, batch_size: int) -> TokenDataModule:
    return TokenDataModule(str(data_dir), context_length=context, batch_size=batch_size)


def parrot_run(
    shape: dict, data_dir: Path, batch_size: int, warmup: int, steps: int, device: str
) -> Run:
    quiet_lightning()  # as train.py: no start-up banners between the bench's lines
    torch.manual_seed(0)
    lit = LitLM(model=shape, optim=OPTIM, total_steps=warmup + steps)
    apply_speed_settings({}, lit.model, on_cuda=device == "cuda")  # train.py's defaults
    timer = StepTimer(warmup)
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        precision="bf16-mixed" if device == "cuda" else "32-true",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=[timer],
        default_root_dir=str(data_dir.parent),
    )
    trainer.fit(lit, datamodule=_datamodule(data_dir, shape["context_length"], batch_size))
    seconds = timer.step_seconds()
    rate = median_rate(seconds, batch_size * shape["context_length"])
    fused = bool(trainer.optimizers[0].defaults.get("fused"))
    return Run(rate, timer.between / sum(seconds), timer.warmup_seconds(), fused)


def bare_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    grad_clip: float,
    autocast: Any = None,
) -> torch.Tensor:
    """The body of the loop a user would write: forward (inside `autocast` if given), mean
    token cross-entropy of x (B, T) against y (B, T), backward, clipping, the optimizer step,
    gradients freed. Returns the loss (a 0-d tensor, not yet synced)."""
    with autocast or contextlib.nullcontext():
        logits = model(x)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def bare_run(
    shape: dict, data_dir: Path, batch_size: int, warmup: int, steps: int, device: str
) -> Run:
    """The loop a user would write: same model init, windows, sampler, AdamW and schedule."""
    torch.manual_seed(0)
    lit = LitLM(model=shape, optim=OPTIM, total_steps=warmup + steps)
    model = lit.model.to(device).train()
    apply_speed_settings({}, model, on_cuda=device == "cuda")  # the same compile as ParrotLM
    optimizer = build_optimizer(model, OPTIM)
    scheduler = build_scheduler(optimizer, OPTIM, warmup + steps)
    dm = _datamodule(data_dir, shape["context_length"], batch_size)
    dm.setup("fit")
    loader = torch.utils.data.DataLoader(
        dm.train_set, batch_size=batch_size, shuffle=True, drop_last=True
    )
    batches = iter(loader)
    autocast = torch.autocast(device, torch.bfloat16, enabled=device == "cuda")
    waiting, starts, first = 0.0, [], time.perf_counter()
    for step in range(warmup + steps):
        fetch = time.perf_counter()
        if step == warmup:
            waiting = 0.0
        if step >= warmup:
            starts.append(fetch)
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        waiting += time.perf_counter() - fetch
        loss = bare_step(model, optimizer, x, y, OPTIM["grad_clip"], autocast)
        scheduler.step()
        loss.item()  # as a loop that prints its loss: one host sync per step
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = [b - a for a, b in zip(starts, [*starts[1:], time.perf_counter()], strict=True)]
    rate = median_rate(seconds, batch_size * shape["context_length"])
    fused = bool(optimizer.defaults.get("fused"))
    return Run(rate, waiting / sum(seconds), starts[0] - first, fused)


def training_speed(
    name: str,
    shape: dict[str, Any],
    data_dir: Path,
    batch_size: int,
    warmup: int = 3,
    steps: int = 10,
    repeats: int = 3,
    *,
    device: str | None = None,
    probe: bool = True,
    peak_size: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """ParrotLM against the bare loop, `repeats` pairs of `warmup` + `steps` steps each, on
    `device` (default: CUDA if there is one). Rates in tokens/s, FLOPs in FLOP/s, memory in
    MiB, times in seconds. probe: also time scripts/plan.py's probe (on a GPU one more
    compile); peak_size: the side of the square matmuls the peak is measured with;
    progress: a line on stderr before and after each run."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    pairs = []
    for i in range(repeats):  # pair by pair, so drifts in machine speed hit both alike
        order = (parrot_run, bare_run) if i % 2 == 0 else (bare_run, parrot_run)
        measured = {}
        for run in order:
            loop = "ParrotLM" if run is parrot_run else "bare loop"
            say = f"{name} pair {i + 1}/{repeats}, {loop}"
            compiles = device == "cuda" and not pairs and run is order[0]
            note = " (this first run compiles the model, about 30-90 s)" if compiles else ""
            _progress(progress, f"{say}: {warmup} warm-up + {steps} measured steps{note} ...")
            measured[run] = run(shape, data_dir, batch_size, warmup, steps, device)
            r = measured[run]
            _progress(
                progress, f"{say}: {r.tokens_per_s:,.0f} tokens/s, warm-up {r.warmup_s:.1f} s"
            )
        pairs.append({"parrot": measured[parrot_run], "bare": measured[bare_run]})
    if device == "cuda":
        peak_memory_mib = torch.cuda.max_memory_allocated() / 2**20
    else:  # the process's peak resident set (Linux reports KiB)
        peak_memory_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak_size = peak_size or (4096 if device == "cuda" else 1024)
    peak = measure_peak_flops(device, dtype, size=peak_size)
    tokens_per_s = statistics.median(p["parrot"].tokens_per_s for p in pairs)
    flops = tokens_per_s * flops_per_token(GPTConfig(**shape))
    result = {
        "model": name,
        "device": device,
        "device_name": device_name(device),
        "precision": "bf16-mixed" if device == "cuda" else "32-true",
        "dtype": str(dtype).removeprefix("torch."),
        "compiled": device == "cuda",  # apply_speed_settings' default, as in train.py
        "batch": [batch_size, shape["context_length"]],
        "warmup_steps": warmup,
        "measured_steps": steps,
        "pairs": [
            {
                "parrot_tokens_per_s": p["parrot"].tokens_per_s,
                "bare_tokens_per_s": p["bare"].tokens_per_s,
                "ratio_parrot_vs_bare": p["parrot"].tokens_per_s / p["bare"].tokens_per_s,
                "parrot_warmup_s": p["parrot"].warmup_s,
                "bare_warmup_s": p["bare"].warmup_s,
            }
            for p in pairs
        ],
        "parrot_fused_adamw": all(p["parrot"].fused for p in pairs),
        "bare_fused_adamw": all(p["bare"].fused for p in pairs),
        "parrot_tokens_per_s": tokens_per_s,
        "bare_tokens_per_s": statistics.median(p["bare"].tokens_per_s for p in pairs),
        "achieved_flops": flops,
        "peak_flops": peak,
        "peak_matmul_size": peak_size,
        "mfu": flops / peak,
        "parrot_between_steps_fraction": statistics.median(
            p["parrot"].wait_fraction for p in pairs
        ),
        "bare_data_wait_fraction": statistics.median(p["bare"].wait_fraction for p in pairs),
        "peak_memory_mib": peak_memory_mib,
    }
    result["ratio_parrot_vs_bare"] = statistics.median(
        p["ratio_parrot_vs_bare"] for p in result["pairs"]
    )
    if probe:
        result["plan_probe_tokens_per_s"] = plan_probe(shape, batch_size, warmup, steps, device)
        result["ratio_plan_probe_vs_parrot"] = result["plan_probe_tokens_per_s"] / tokens_per_s
    return result


def _progress(enabled: bool, line: str) -> None:
    if enabled:  # stderr: stdout is the table
        print(f"bench: {line}", file=sys.stderr, flush=True)


def plan_probe(shape: dict, batch_size: int, warmup: int, steps: int, device: str) -> float:
    """The tokens/s `scripts/plan.py`'s probe predicts for this model and batch (issue 18: within
    20% of what the run achieves)."""
    from omegaconf import OmegaConf

    from parrot_lm.planning.probe import run_probe

    cfg = OmegaConf.create(
        {
            "trainer": {
                "accelerator": "gpu" if device == "cuda" else "cpu",
                "precision": "bf16-mixed" if device == "cuda" else "32-true",
                "accumulate_grad_batches": 1,
            },
            "data": {"batch_size": batch_size, "context_length": shape["context_length"]},
            "optim": OPTIM,
            "speed": {},
        }
    )
    gpt = GPTConfig(**shape)
    return run_probe(cfg, gpt, flops_per_token(gpt), steps=steps, warmup=warmup).tokens_per_s


def stories_data(root: Path, num_documents: int = 2000) -> Path:
    """A prepared corpus of embedded stories with a 2,048-token BPE (the default data)."""
    from parrot_lm.data.prepare import prepare_corpus

    data_dir = root / "stories"
    prepare_corpus(
        data_dir,
        {"kind": "stories", "num_documents": num_documents, "seed": 0},
        {"kind": "bpe", "vocab_size": 2048},
        0.05,
    )
    return data_dir


def run_training_bench(
    models: dict[str, tuple[dict, int]],
    quick: bool,
    documents: int | None = None,
    counts: tuple[int, int, int] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """models: name -> (shape, batch size), each timed by `training_speed` in a fresh process
    on a corpus of `documents` stories; counts: (warm-up steps, measured steps, pairs) for
    every model (default: MEASURE's per model); options: training_speed's keywords."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = stories_data(Path(tmp), documents or (300 if quick else 4000))
        results = []
        for name, (shape, batch) in models.items():
            # One tiny CPU step is ~0.2 s, one deep_narrow step ~3.5 s.
            steps, repeats = (3, 1) if quick else MEASURE.get(name, (10, 3))
            warmup = 1 if quick else 2
            if counts is not None:
                warmup, steps, repeats = counts
            args = (name, shape, data_dir, batch, warmup, steps, repeats)
            results.append(in_fresh_process(training_speed, *args, **options))
        return results


def in_fresh_process(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) in a new (spawned) Python process: its peak RSS is its own, and the
    parent stays small, so later benchmarks (a fork inherits the parent's peak RSS figure, and
    fork time grows with its memory) measure what they mean to."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()
