"""`make bench`: print a table of measured ratios and write it under outputs/bench/.

python -m benchmarks            # the full sizes (make bench)
python -m benchmarks --quick    # tiny sizes (what the tests run)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import markdown_table

ROOT = Path(__file__).resolve().parents[1]

# The benchmark modules are imported inside main(): the tokenizer pool's spawned workers
# re-import this file, and transformers + Lightning would cost each of them seconds.


def _cpu_row(result: dict) -> tuple[str, str]:
    """A per-FLOP bench result's row label (model, CPU fp32, the batch it ran) and its pair
    ratios as printed."""
    batch, context = result["batch"]
    pairs = ", ".join(f"{x:.2f}" for x in result["ratios"])
    return f"train {result['model']} (cpu fp32, batch {batch}x{context})", pairs


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds not minutes")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args(argv)
    from benchmarks.generate import (
        MODELS,
        QUICK,
        evaluation_speed,
        generation_speed,
    )
    from benchmarks.per_flop import run_per_flop_bench
    from benchmarks.prepare import prepare_peak_memory, tokenize_throughput
    from benchmarks.train import (
        TRAIN_MODELS,
        TRAIN_MODELS_GPU,
        TRAIN_QUICK,
        run_training_bench,
    )

    docs = 400 if args.quick else 40_000
    import torch

    train_models = TRAIN_MODELS_GPU if torch.cuda.is_available() else TRAIN_MODELS
    results = {
        "training": [],  # measured last, below: the table still lists it first
        "tokenize": tokenize_throughput(docs, repeats=1 if args.quick else 3),
        "prepare_memory": prepare_peak_memory(200 if args.quick else 100_000),
        "generation": [
            generation_speed(name, shape, 16 if args.quick else 256, 1 if args.quick else 3)
            for name, shape in ({"quick": QUICK} if args.quick else MODELS).items()
        ],
        "evaluation": evaluation_speed(
            QUICK if args.quick else MODELS["tiny"], 2_000 if args.quick else 100_000
        ),
    }
    results["training"] = run_training_bench(
        TRAIN_QUICK if args.quick else train_models, args.quick
    )
    results["per_flop"] = run_per_flop_bench(
        TRAIN_QUICK if args.quick else TRAIN_MODELS, args.quick
    )
    t, m = results["tokenize"], results["prepare_memory"]
    rows = []
    for r in results["training"]:
        label = f"train {r['model']} ({r['device']}, batch {r['batch'][0]}x{r['batch'][1]})"
        rows += [
            (f"{label}: ParrotLM (tokens/s)", f"{r['parrot_tokens_per_s']:,.0f}"),
            (f"{label}: bare PyTorch loop (tokens/s)", f"{r['bare_tokens_per_s']:,.0f}"),
            (f"{label}: ParrotLM / bare (target >= 0.97)", f"{r['ratio_parrot_vs_bare']:.3f}"),
            (
                f"{label}: achieved / measured peak FLOP/s (MFU)",
                f"{r['achieved_flops'] / 1e9:,.1f} / {r['peak_flops'] / 1e9:,.1f} G = "
                f"{r['mfu']:.1%}",
            ),
            (
                f"{label}: time between steps, data + loop (target < 1%)",
                f"{r['parrot_between_steps_fraction']:.2%}",
            ),
            (f"{label}: peak memory (MiB)", f"{r['peak_memory_mib']:,.0f}"),
            (
                f"{label}: plan.py probe / ParrotLM tokens/s (target 0.8-1.2)",
                f"{r['ratio_plan_probe_vs_parrot']:.2f}",
            ),
        ]
    for r in results["per_flop"]["ratios"]:
        label, pairs = _cpu_row(r)
        rows += [
            (
                f"{label}: LLaMA vs GPT-2-style block (tokens/s)",
                f"{r['llama_tokens_per_s']:,.0f} vs {r['gpt2_tokens_per_s']:,.0f}",
            ),
            (
                f"{label}: LLaMA / GPT-2-style achieved FLOP/s (target >= 1.0)",
                f"{r['ratio_llama_vs_gpt2']:.3f} (pairs {pairs})",
            ),
        ]
    for r in results["per_flop"]["fused_adamw"]:
        label, pairs = _cpu_row(r)
        rows.append(
            (
                f"{label}: fused / foreach AdamW, training step (tokens/s)",
                f"{r['ratio_fused_vs_foreach']:.3f} (pairs {pairs})",
            )
        )
    for r in results["per_flop"]["freed_memory"]:
        label, pairs = _cpu_row(r)
        rows += [
            (
                f"{label}: malloc keeps freed memory / glibc default (tokens/s)",
                f"{r['ratio_reuse_vs_default']:.3f} (pairs {pairs})",
            ),
            (
                f"{label}: page faults per step, kept / default",
                f"{r['faults_per_step_reuse']:,.0f} / {r['faults_per_step_default']:,.0f}",
            ),
        ]
    c = results["per_flop"]["compile"]
    label, pairs = _cpu_row(c)
    even = "never" if c["break_even_steps"] is None else f"{c['break_even_steps']:,.0f} steps"
    rows += [
        (
            f"{label}: torch.compile / eager (tokens/s)",
            f"{c['ratio_compiled_vs_eager']:.3f} (pairs {pairs})",
        ),
        (
            f"{label}: compile warm-up, cold cache (s); pays off after",
            f"{c['warm_up_s']:.1f}; {even}",
        ),
    ]
    rows += [
        (
            "tokenize: raw tiktoken encode_ordinary_batch (tokens/s)",
            f"{t['raw_tiktoken_tokens_per_s']:,.0f}",
        ),
        (
            "tokenize: pipeline, 1 process (tokens/s)",
            f"{t['pipeline_1_process_tokens_per_s']:,.0f}",
        ),
        (
            "tokenize: pipeline, 2 processes (tokens/s)",
            f"{t['pipeline_2_processes_tokens_per_s']:,.0f}",
        ),
        (
            "tokenize: pipeline / raw, 1 process (target >= 0.8)",
            f"{t['ratio_1_process_vs_raw']:.2f}",
        ),
        ("tokenize: pipeline / raw, 2 processes", f"{t['ratio_2_processes_vs_raw']:.2f}"),
        (
            f"prepare peak RSS, {m['documents'][0]:,} vs {m['documents'][1]:,} docs (MiB)",
            f"{m['peak_rss_mib'][0]:.0f} vs {m['peak_rss_mib'][1]:.0f}",
        ),
        ("prepare peak RSS ratio, 2x corpus (target ~1.0, flat)", f"{m['ratio_2x_vs_1x']:.2f}"),
    ]
    for g in results["generation"]:
        label = f"generate {g['model']}, {g['new_tokens']} new tokens, batch 1"
        rows.append((f"{label}: KV cache (tokens/s)", f"{g['kv_cache_tokens_per_s']:,.0f}"))
        rows.append((f"{label}: no cache (tokens/s)", f"{g['no_cache_tokens_per_s']:,.0f}"))
        rows.append((f"{label}: cache / no cache (target >= 5)", f"{g['kv_cache_speedup']:.1f}"))
        if "vs_transformers" in g:
            hf = f"{g['transformers_tokens_per_s']:,.0f}"
            rows.append((f"{label}: transformers generate (tokens/s)", hf))
            rows.append(
                (f"{label}: ParrotLM / transformers (target >= 1)", f"{g['vs_transformers']:.2f}")
            )
    e = results["evaluation"]
    rows.append(
        ("evaluate tiny, stride = context / 2, batch 8 (windows/s)", f"{e['windows_per_s']:,.1f}")
    )
    table = markdown_table(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(table + "\n")
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
