"""make bench-gpu: its code path at tiny sizes on the CPU (--quick), and its refusal without a
GPU. It asserts no timings: only that the figures it reports agree with each other."""

import json
import statistics

import pytest
import torch

from tests.helpers import ROOT, assert_user_error, run_cli

# Scheduling only (tests/conftest.py hands the longest files out first), measured on an idle
# 2-core machine: 11.9 s quick, 1.5 s refusal.
SCHEDULE_SECONDS = 13


def test_bench_gpu_quick_writes_consistent_table_and_json(tmp_path):
    # Two processes start: the bench and the model's fresh process (2 pairs of 4 tiny steps).
    proc = run_cli(["-m", "benchmarks.gpu", "--quick", "--out", str(tmp_path)], cwd=ROOT, jobs=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bench: quick pair 2/2" in proc.stderr  # progress, off stdout
    table = (tmp_path / "bench-gpu.md").read_text()
    assert table.startswith("| measurement | value |") and table.strip() == proc.stdout.strip()
    results = json.loads((tmp_path / "bench-gpu.json").read_text())
    assert results["counts"] == [1, 3, 2] and results["elapsed_s"] > 0
    (r,) = results["training"]
    assert r["device"] == "cpu" and r["dtype"] == "float32" and not r["compiled"]
    assert len(r["pairs"]) == 2
    for pair in r["pairs"]:
        assert (
            pair["ratio_parrot_vs_bare"] == pair["parrot_tokens_per_s"] / pair["bare_tokens_per_s"]
        )
        assert pair["parrot_warmup_s"] >= 0 and pair["bare_warmup_s"] >= 0
    ratios = [pair["ratio_parrot_vs_bare"] for pair in r["pairs"]]
    assert r["ratio_parrot_vs_bare"] == statistics.median(ratios)
    parrot = [pair["parrot_tokens_per_s"] for pair in r["pairs"]]
    assert r["parrot_tokens_per_s"] == statistics.median(parrot) > 0
    assert 0 < r["mfu_measured"] == r["mfu"] == r["achieved_flops"] / r["peak_flops"]
    assert r["datasheet_peak_flops"] is None and r["mfu_datasheet"] is None
    assert r["parrot_fused_adamw"] is True and r["bare_fused_adamw"] is True  # optim.fused: null
    assert r["peak_memory_mib"] > 0
    assert "plan_probe_tokens_per_s" not in r  # skipped: on a GPU it would compile again
    for row in ("ParrotLM (tokens/s)", "ParrotLM / bare", "MFU vs NVIDIA datasheet", "n/a"):
        assert row in table
    assert "MFU vs measured fp32 matmul peak" in table and "peak memory MiB" in table
    assert table.strip().splitlines()[-1].startswith("| bench-gpu wall time, all of it (s) |")


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal without a GPU")
def test_bench_gpu_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "bench"
    proc = run_cli(["-m", "benchmarks.gpu", "--out", str(out)], cwd=ROOT)
    assert_user_error(proc, "needs a CUDA GPU", code=2)
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "make bench" in proc.stderr and proc.stdout == ""
    assert not out.exists()
