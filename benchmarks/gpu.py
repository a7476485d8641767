"""`make bench-gpu`: the GPU training table (bf16, torch.compile, fused AdamW) of ParrotLM
against a bare PyTorch loop, written to outputs/bench/bench-gpu.md and bench-gpu.json.

python -m benchmarks.gpu            # needs a CUDA GPU (make bench-gpu)
python -m benchmarks.gpu --quick    # the same code path on the CPU at tiny sizes (the tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import markdown_table

STARTED = time.perf_counter()  # the wall-time row counts from here: imports included
ROOT = Path(__file__).resolve().parents[1]

# (warm-up steps, measured steps, pairs). One process per model compiles once: later runs
# reuse the compiled graph, so more pairs cost seconds, not another compile.
GPU_COUNTS = (3, 30, 3)
QUICK_COUNTS = (1, 3, 2)
# Stories for the corpus: the bare loop makes one pass over the 1024-token windows, and
# 20,000 stories give ~2,300 of them, 73 batches of 32 (33 are needed); 4,000 gave 14.
GPU_DOCUMENTS, QUICK_DOCUMENTS = 20_000, 300
GPU_PEAK_SIZE = 8192  # the side of the bf16 matmuls the measured peak is timed with
NO_GPU = (
    "error: make bench-gpu needs a CUDA GPU and none is visible (torch.cuda.is_available() is "
    "False); run `make bench` for the CPU table, or add --quick to try this bench on the CPU."
)


def mfu(achieved_flops: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved / peak, both in FLOP/s; None without a peak."""
    return achieved_flops / peak_flops if peak_flops else None


def add_datasheet_mfu(result: dict[str, Any], datasheet_flops: float | None) -> dict[str, Any]:
    """A `training_speed` result with MFU against a datasheet peak (FLOP/s, None where the
    device has none) next to its MFU against the peak measured in the run."""
    return {
        **result,
        "datasheet_peak_flops": datasheet_flops,
        "mfu_datasheet": mfu(result["achieved_flops"], datasheet_flops),
        "mfu_measured": mfu(result["achieved_flops"], result["peak_flops"]),
    }


def flop_rate(flops: float) -> str:
    """FLOP/s for a person: in TFLOP/s from 1e12 up, else GFLOP/s."""
    return f"{flops / 1e12:,.1f} TFLOP/s" if flops >= 1e12 else f"{flops / 1e9:,.1f} GFLOP/s"


def training_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The table rows of one model's result (`add_datasheet_mfu`'s dict)."""
    dtype = {"bfloat16": "bf16", "float32": "fp32"}.get(r["dtype"], r["dtype"])
    label = f"train {r['model']} ({dtype}, batch {r['batch'][0]}x{r['batch'][1]})"
    pairs = ", ".join(f"{p['ratio_parrot_vs_bare']:.3f}" for p in r["pairs"])
    achieved = flop_rate(r["achieved_flops"])
    if r["mfu_datasheet"] is None:
        datasheet = f"n/a (no datasheet figure for {r['device_name']})"
    else:
        peak = flop_rate(r["datasheet_peak_flops"])
        datasheet = f"{achieved} / {peak} = {r['mfu_datasheet']:.1%}"
    size = r["peak_matmul_size"]
    measured = f"{achieved} / {flop_rate(r['peak_flops'])} = {r['mfu_measured']:.1%}"
    yes = {True: "yes", False: "no"}
    warmup = max(max(p["parrot_warmup_s"], p["bare_warmup_s"]) for p in r["pairs"])
    compile_label = "compile warm-up s" if r["compiled"] else "warm-up s (no compile)"
    memory = "max_memory_allocated" if r["device"] == "cuda" else "peak RSS"
    return [
        (f"{label}: ParrotLM (tokens/s)", f"{r['parrot_tokens_per_s']:,.0f}"),
        (f"{label}: bare PyTorch loop (tokens/s)", f"{r['bare_tokens_per_s']:,.0f}"),
        (
            f"{label}: ParrotLM / bare, median of {len(r['pairs'])} pairs (target >= 0.97)",
            f"{r['ratio_parrot_vs_bare']:.3f} (pairs: {pairs})",
        ),
        (f"{label}: MFU vs NVIDIA datasheet dense {dtype} peak", datasheet),
        (f"{label}: MFU vs measured {dtype} matmul peak ({size}^3)", measured),
        (
            f"{label}: torch.compile, fused AdamW (ParrotLM / bare)",
            f"{yes[r['compiled']]}, {yes[r['parrot_fused_adamw']]} / "
            f"{yes[r['compiled']]}, {yes[r['bare_fused_adamw']]}",
        ),
        (
            f"{label}: {compile_label} ({r['warmup_steps']} warm-up steps, slowest run)",
            f"{warmup:.1f}",
        ),
        (
            f"{label}: time between steps, data + loop (target < 1%)",
            f"{r['parrot_between_steps_fraction']:.2%}",
        ),
        (f"{label}: peak memory MiB ({memory})", f"{r['peak_memory_mib']:,.0f}"),
    ]


def table_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Every row of the bench-gpu table from its results (what bench-gpu.json holds)."""
    warmup, steps, pairs = results["counts"]
    rows = [
        ("device", f"{results['device_name']}, torch {results['torch']}"),
        ("steps per run: warm-up + measured, pairs per model", f"{warmup} + {steps}, {pairs}"),
    ]
    for r in results["training"]:
        rows += training_rows(r)
    rows.append(("bench-gpu wall time, all of it (s)", f"{results['elapsed_s']:.0f}"))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="on the CPU at tiny sizes, fp32")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args(argv)
    import torch

    if not args.quick and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    from benchmarks.train import TRAIN_MODELS_GPU, TRAIN_QUICK, run_training_bench
    from parrot_lm.training.flops import datasheet_peak

    device = "cpu" if args.quick else "cuda"
    counts = QUICK_COUNTS if args.quick else GPU_COUNTS
    models = TRAIN_QUICK if args.quick else TRAIN_MODELS_GPU
    # CUDA starts in the models' processes only: this one keeps no context on the GPU.
    print(f"bench: {', '.join(models)} on {device}, each in a fresh process", file=sys.stderr)
    training = run_training_bench(
        models,
        args.quick,
        documents=QUICK_DOCUMENTS if args.quick else GPU_DOCUMENTS,
        counts=counts,
        device=device,
        probe=False,  # scripts/plan.py's probe would compile each model once more
        peak_size=None if args.quick else GPU_PEAK_SIZE,
        progress=True,
    )
    for i, r in enumerate(training):
        on_gpu = r["device"] == "cuda"
        peak = datasheet_peak(r["device_name"], getattr(torch, r["dtype"])) if on_gpu else None
        training[i] = add_datasheet_mfu(r, peak)
    results = {
        "device_name": training[0]["device_name"],
        "torch": torch.__version__,
        "counts": list(counts),
        "training": training,
    }
    results["elapsed_s"] = time.perf_counter() - STARTED
    table = markdown_table(table_rows(results))
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-gpu.md").write_text(table + "\n")
    (args.out / "bench-gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
