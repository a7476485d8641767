"""Data-preparation benchmarks: tokenization throughput against raw tiktoken on the same text
and cores, and peak memory of preparing a streamed source twice as large as another."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from parrot_lm.data import tokenizer as tok
from parrot_lm.data.stories import generate_stories
from parrot_lm.data.writer import ShardWriter, encode_split


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tokenize_throughput(num_docs: int, repeats: int = 3) -> dict[str, Any]:
    """Tokens/s of the pipeline's encode+write path vs tiktoken's encode_ordinary_batch."""
    docs = generate_stories(num_docs, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ranks = tok.train_bpe(docs[:2000], 2048)
        tok.save_ranks(ranks, tmp / tok.RANKS_FILE)
        entry = {"kind": "bpe", "file": tok.RANKS_FILE}
        enc = tok.load_tokenizer(entry, tmp)
        n_tokens = sum(len(ids) + 1 for ids in enc.encode_ordinary_batch(docs, num_threads=2))

        def raw() -> None:
            enc.encode_ordinary_batch(docs, num_threads=2)

        def pipeline(workers: int):
            def go() -> None:
                writer = ShardWriter(tmp, f"bench{workers}", enc_dtype(enc), 10**9)
                encode_split(entry, tmp, iter(docs), writer, workers)

            return go

        t_raw = _median_time(raw, repeats)
        t_one = _median_time(pipeline(1), repeats)
        t_two = _median_time(pipeline(2), repeats)
    return {
        "documents": num_docs,
        "tokens": n_tokens,
        "raw_tiktoken_tokens_per_s": n_tokens / t_raw,
        "pipeline_1_process_tokens_per_s": n_tokens / t_one,
        "pipeline_2_processes_tokens_per_s": n_tokens / t_two,
        "ratio_1_process_vs_raw": t_raw / t_one,
        "ratio_2_processes_vs_raw": t_raw / t_two,
    }


def enc_dtype(enc) -> str:
    return "uint16" if enc.n_vocab <= 2**16 else "uint32"


_PREPARE_CHILD = """
import json, resource, sys
from parrot_lm.data.prepare import prepare_corpus
path, out = sys.argv[1], sys.argv[2]
prepare_corpus(out, {"kind": "files", "path": path}, {"kind": "byte"}, 0.05, workers=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def prepare_peak_memory(num_docs: int) -> dict[str, Any]:
    """Peak RSS (KiB) of preparing a jsonl source of n and of 2n documents, each in a fresh
    process; flat means memory does not grow with the corpus."""
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (num_docs, 2 * num_docs):
            path = Path(tmp) / f"corpus{n}.jsonl"
            with open(path, "w") as f:
                for i in range(0, n, 5000):
                    for doc in generate_stories(min(5000, n - i), seed=i):
                        f.write(json.dumps({"text": doc}) + "\n")
            proc = subprocess.run(
                [sys.executable, "-c", _PREPARE_CHILD, str(path), str(Path(tmp) / f"out{n}")],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks[n] = int(proc.stdout.strip().splitlines()[-1])
    small, large = peaks[num_docs], peaks[2 * num_docs]
    return {
        "documents": [num_docs, 2 * num_docs],
        "peak_rss_mib": [small / 1024, large / 1024],
        "ratio_2x_vs_1x": large / small,
    }
