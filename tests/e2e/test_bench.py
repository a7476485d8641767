"""The bench runs end to end at tiny sizes and writes its table; it asserts no timings."""

import json
import statistics

from tests.helpers import ROOT, run_cli

# Scheduling only (tests/conftest.py hands the longest files out first): one long test.
SCHEDULE_SECONDS = 60


def test_bench_quick_writes_table_and_json(tmp_path):
    # Its stages (tokenize, prepare memory in two subprocesses, generation, evaluation, training)
    # each start up about as long as a process does: their sum bounds the time.
    proc = run_cli(["-m", "benchmarks", "--quick", "--out", str(tmp_path)], cwd=ROOT, jobs=6)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pipeline / raw" in proc.stdout
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["tokenize"]["tokens"] > 10_000
    assert results["tokenize"]["raw_tiktoken_tokens_per_s"] > 0
    assert len(results["prepare_memory"]["peak_rss_mib"]) == 2
    assert (tmp_path / "bench.md").read_text().startswith("| measurement | value |")
    # Generation with and without the KV cache and with transformers, and evaluation speed.
    (gen,) = results["generation"]
    assert gen["new_tokens"] == 16
    for key in ("kv_cache_tokens_per_s", "no_cache_tokens_per_s", "transformers_tokens_per_s"):
        assert gen[key] > 0
    assert results["evaluation"]["windows"] > 0 and results["evaluation"]["windows_per_s"] > 0
    assert "cache / no cache" in proc.stdout and "ParrotLM / transformers" in proc.stdout
    # Training: ParrotLM and the bare loop both ran and were compared; MFU against a peak.
    (train,) = results["training"]
    assert train["parrot_tokens_per_s"] > 0 and train["bare_tokens_per_s"] > 0
    ratio = train["parrot_tokens_per_s"] / train["bare_tokens_per_s"]
    assert 0 < train["ratio_parrot_vs_bare"] and abs(train["ratio_parrot_vs_bare"] - ratio) < 1e-9
    assert 0 < train["mfu"] == train["achieved_flops"] / train["peak_flops"]
    assert 0 <= train["parrot_between_steps_fraction"] < 1
    assert "ParrotLM / bare" in proc.stdout and "MFU" in proc.stdout
    # Per FLOP: the LLaMA block against the GPT-2-style one, pair by pair; compile's payoff.
    (per_flop,) = results["per_flop"]["ratios"]
    assert len(per_flop["ratios"]) == 2
    assert per_flop["ratio_llama_vs_gpt2"] == statistics.median(per_flop["ratios"]) > 0
    (adamw,) = results["per_flop"]["fused_adamw"]
    assert adamw["ratio_fused_vs_foreach"] == statistics.median(adamw["ratios"]) > 0
    (memory,) = results["per_flop"]["freed_memory"]
    assert memory["ratio_reuse_vs_default"] == statistics.median(memory["ratios"]) > 0
    assert memory["faults_per_step_reuse"] >= 0 and memory["faults_per_step_default"] >= 0
    payoff = results["per_flop"]["compile"]
    assert payoff["compiled_tokens_per_s"] > 0 and payoff["warm_up_s"] >= 0
    assert "GPT-2-style achieved FLOP/s" in proc.stdout and "torch.compile / eager" in proc.stdout
    assert "malloc keeps freed memory / glibc default" in proc.stdout
