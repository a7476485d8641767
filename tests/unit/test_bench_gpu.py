"""make bench-gpu's pure parts, fed dicts and device names: no GPU needed."""

import pytest
import torch

from benchmarks import markdown_table
from benchmarks.gpu import add_datasheet_mfu, flop_rate, mfu, table_rows
from parrot_lm.training.flops import datasheet_peak


def measured(**overrides) -> dict:
    """A training_speed result as an H200 run might give it."""
    result = {
        "model": "gpt2_small",
        "device": "cuda",
        "device_name": "NVIDIA H200",
        "dtype": "bfloat16",
        "compiled": True,
        "batch": [16, 1024],
        "warmup_steps": 3,
        "pairs": [
            {"ratio_parrot_vs_bare": 0.98, "parrot_warmup_s": 61.0, "bare_warmup_s": 2.5},
            {"ratio_parrot_vs_bare": 1.01, "parrot_warmup_s": 3.0, "bare_warmup_s": 2.0},
        ],
        "parrot_fused_adamw": True,
        "bare_fused_adamw": True,
        "parrot_tokens_per_s": 400_000.0,
        "bare_tokens_per_s": 405_000.0,
        "ratio_parrot_vs_bare": 0.995,
        "achieved_flops": 320e12,
        "peak_flops": 640e12,
        "peak_matmul_size": 8192,
        "parrot_between_steps_fraction": 0.004,
        "peak_memory_mib": 30_000.0,
    }
    return {**result, **overrides}


@pytest.mark.parametrize(
    ("name", "dtype", "peak"),
    [
        ("NVIDIA H200", torch.bfloat16, 989e12),
        ("NVIDIA H200 NVL", torch.bfloat16, 835e12),  # the PCIe card: lower clocks and power
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),  # the SXM module
        ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
        ("NVIDIA H100 NVL", torch.float32, 417.5e12),
        ("Tesla V100-PCIE-32GB", torch.float16, 112e12),
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312e12),
        ("NVIDIA A100-SXM4-80GB", torch.float32, 156e12),
        ("Tesla V100-SXM2-16GB", torch.bfloat16, None),  # no bf16 tensor cores
        ("NVIDIA RTX A1000", torch.bfloat16, None),  # not an A100
        ("NVIDIA GeForce RTX 4090", torch.bfloat16, None),
        ("Intel(R) Xeon(R) Processor", torch.float32, None),
    ],
)
def test_datasheet_peak_by_device_name(name, dtype, peak):
    assert datasheet_peak(name, dtype) == peak


def test_mfu_is_achieved_over_peak_and_none_without_a_peak():
    assert mfu(247.25e12, 989e12) == 0.25
    assert mfu(1e12, None) is None


def test_both_mfus_against_their_own_peaks():
    r = add_datasheet_mfu(measured(), 800e12)
    assert r["mfu_datasheet"] == 320e12 / 800e12 and r["mfu_measured"] == 0.5
    assert r["datasheet_peak_flops"] == 800e12 and r["model"] == "gpt2_small"
    assert add_datasheet_mfu(measured(), None)["mfu_datasheet"] is None


def test_flop_rate_picks_its_unit():
    assert flop_rate(989e12) == "989.0 TFLOP/s" and flop_rate(5.7e9) == "5.7 GFLOP/s"


def results(*training: dict) -> dict:
    return {
        "device_name": "NVIDIA H200",
        "torch": "2.13.0",
        "counts": [3, 30, 2],
        "training": list(training),
        "elapsed_s": 301.4,
    }


def test_rows_of_an_h200_run():
    rows = dict(table_rows(results(add_datasheet_mfu(measured(), 989e12))))
    label = "train gpt2_small (bf16, batch 16x1024)"
    assert rows["device"] == "NVIDIA H200, torch 2.13.0"
    assert rows[f"{label}: ParrotLM (tokens/s)"] == "400,000"
    assert rows[f"{label}: bare PyTorch loop (tokens/s)"] == "405,000"
    ratio = rows[f"{label}: ParrotLM / bare, median of 2 pairs (target >= 0.97)"]
    assert ratio == "0.995 (pairs: 0.980, 1.010)"
    datasheet = rows[f"{label}: MFU vs NVIDIA datasheet dense bf16 peak"]
    assert datasheet == "320.0 TFLOP/s / 989.0 TFLOP/s = 32.4%"
    peak = rows[f"{label}: MFU vs measured bf16 matmul peak (8192^3)"]
    assert peak == "320.0 TFLOP/s / 640.0 TFLOP/s = 50.0%"
    assert rows[f"{label}: torch.compile, fused AdamW (ParrotLM / bare)"] == "yes, yes / yes, yes"
    # The slowest run's warm-up: the cold compile, not the runs that reuse its graph.
    assert rows[f"{label}: compile warm-up s (3 warm-up steps, slowest run)"] == "61.0"
    assert rows[f"{label}: peak memory MiB (max_memory_allocated)"] == "30,000"
    assert (
        list(rows)[-1] == "bench-gpu wall time, all of it (s)"
        and rows["bench-gpu wall time, all of it (s)"] == "301"
    )


def test_rows_without_a_datasheet_figure_or_a_fused_optimizer():
    cpu = measured(device="cpu", device_name="Some CPU", dtype="float32", compiled=False)
    cpu.update(bare_fused_adamw=False, parrot_fused_adamw=False, peak_flops=1e12)
    rows = dict(table_rows(results(add_datasheet_mfu(cpu, None))))
    label = "train gpt2_small (fp32, batch 16x1024)"
    assert rows[f"{label}: MFU vs NVIDIA datasheet dense fp32 peak"] == (
        "n/a (no datasheet figure for Some CPU)"
    )
    assert rows[f"{label}: torch.compile, fused AdamW (ParrotLM / bare)"] == "no, no / no, no"
    assert f"{label}: warm-up s (no compile) (3 warm-up steps, slowest run)" in rows
    assert f"{label}: peak memory MiB (peak RSS)" in rows


def test_markdown_table():
    assert markdown_table([("a (tokens/s)", "1")]) == (
        "| measurement | value |\n|---|---|\n| a (tokens/s) | 1 |"
    )
