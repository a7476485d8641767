"""Perplexity the standard way: a sliding window of the model's context moved by `stride`, each
token scored once with as much left context as the window gives, NLL summed in float32.

Non-overlapping windows (stride = context) are cheapest but score early tokens of each window
with little context, so they overstate perplexity; a smaller stride gives every token more.
Training validation uses the same windows and metric (with its own stride), so `val/ppl` and
`scripts/evaluate.py` agree on the same split and stride.

Token perplexity depends on the tokenizer (fewer, longer tokens: higher per-token NLL), so it
compares only models that share one. Bits per byte and word-level perplexity divide the same
total NLL by a count that does not: the UTF-8 bytes, or the whitespace-separated words, of the
scored text. Word-level perplexity is the convention of GPT-2's WikiText-103 figures (Radford
et al. 2019, "Language Models are Unsupervised Multitask Learners", Table 3).
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics import Metric

from parrot_lm.core.errors import ConfigError, DataError
from parrot_lm.data.dataset import IGNORE, StridedWindows, TokenStream


class TokenNLL(Metric):
    """Sum of token NLL (nats, float32) and the count of scored tokens; compute() is the mean.

    Cross-entropy from the logits: no probability tensor is kept, unlike a Perplexity metric
    that materialises a full softmax.
    """

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("nll", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        nll = F.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        self.nll += nll.double()
        self.tokens += (targets != IGNORE).sum()

    def compute(self) -> torch.Tensor:
        return (self.nll / self.tokens.clamp(min=1)).float()


def token_byte_lengths(enc: Any) -> np.ndarray:
    """UTF-8 bytes each token id stands for; end-of-text stands for none."""
    lengths = np.array([len(enc.decode_bytes([i])) for i in range(enc.n_vocab)], dtype=np.int64)
    lengths[enc.eot_token] = 0
    return lengths


class WordCount:
    """Whitespace-separated words (`len(text.split())`) of the text a stream of token ids
    decodes to, fed in pieces in order: the count equals that of the whole stream decoded at once.

    Bytes from `enc.decode_bytes`, UTF-8 with errors="replace". End-of-text counts as a line
    break (a document boundary, no word), as `token_byte_lengths` gives it no bytes.
    """

    def __init__(self, enc: Any) -> None:
        self.enc = enc
        self.words = 0
        # Incremental: a character whose bytes straddle two pieces decodes once, not as two U+FFFD.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in_word = False  # the text so far ends inside a word (a piece may continue it)

    def update(self, ids: np.ndarray) -> None:
        """Count the words of the next piece of the stream (token ids, in order)."""
        ids = np.asarray(ids, dtype=np.int64)
        breaks = np.flatnonzero(ids == self.enc.eot_token)
        pieces = np.split(ids, breaks)
        # np.split keeps each EOT at the head of the piece after it: drop it, join with "\n".
        data = b"\n".join(
            self.enc.decode_bytes(p[1:].tolist() if k else p.tolist()) for k, p in enumerate(pieces)
        )
        self._count(self._decoder.decode(data))

    def finish(self) -> int:
        """Flush a trailing incomplete UTF-8 sequence (as U+FFFD) and return the word count."""
        self._count(self._decoder.decode(b"", final=True))
        return self.words

    def _count(self, text: str) -> None:
        if not text:
            return
        n = len(text.split())
        if n and self._in_word and not text[0].isspace():
            n -= 1  # the first word here is the last one of the previous piece, continued
        self.words += n
        self._in_word = not text[-1].isspace()


@torch.no_grad()
def evaluate_perplexity(
    model: torch.nn.Module,
    tokens: np.ndarray | TokenStream,
    stride: int | None = None,
    batch_size: int = 8,
    byte_lengths: np.ndarray | None = None,
    progress: bool = False,
    tokenizer: Any = None,
) -> dict[str, float]:
    """Loss (mean NLL, nats/token) and token perplexity exp(loss) of `tokens` under `model`.

    With `byte_lengths` (`token_byte_lengths`): `bits_per_byte` = total NLL / ln 2 / UTF-8 bytes
    of the scored tokens. With `tokenizer`: `word_ppl` = exp(total NLL (nats) / `words`), the
    words being the whitespace-separated words of the scored tokens' text (`WordCount`): GPT-2's
    word-level perplexity (Radford et al. 2019). Every token but the first is scored once, so
    ppl == word_ppl ** (words / tokens).
    """
    from tqdm import tqdm

    context = model.cfg.context_length
    stride = stride or context // 2 or 1
    data = StridedWindows(tokens, context, stride)
    device = next(model.parameters()).device
    metric = TokenNLL().to(device)
    n_bytes = 0
    words = WordCount(tokenizer) if tokenizer is not None else None
    was_training = model.training
    model.eval()
    try:
        batches: Iterator = iter(DataLoader(data, batch_size=batch_size))
        for x, y in tqdm(batches, total=math.ceil(len(data) / batch_size), disable=not progress):
            metric.update(model(x.to(device)), y.to(device))
            if byte_lengths is not None:
                n_bytes += int(byte_lengths[y[y != IGNORE].numpy()].sum())
            if words is not None:
                # Windows come in order and score contiguous, increasing positions, so the
                # scored targets, row by row, are the token stream from its second token on.
                words.update(y[y != IGNORE].numpy())
    finally:
        model.train(was_training)
    loss = float(metric.compute())
    result = {
        "loss": loss,
        "ppl": math.exp(loss),
        "tokens": int(metric.tokens),
        "windows": len(data),
        "context": context,
        "stride": stride,
    }
    if byte_lengths is not None:
        result["bytes"] = n_bytes
        result["bits_per_byte"] = float(metric.nll) / math.log(2) / max(n_bytes, 1)
    if words is not None:
        result["words"] = words.finish()
        result["word_ppl"] = math.exp(float(metric.nll) / max(result["words"], 1))
    return result


def run_data_dir(ckpt_path: Path) -> Path:
    """The data dir a checkpoint's run trained on, from `<run dir>/run_config.yaml`."""
    from parrot_lm.runs.run_dir import RunDir

    run_dir = RunDir.of_checkpoint(ckpt_path)
    if run_dir.run_config.is_file():
        return Path(run_dir.load_config("evaluate").data.data_dir)
    raise ConfigError(
        f"No {run_dir.run_config} found for {ckpt_path}, so its training data is unknown; set "
        "eval_set.data_dir=<prepared corpus>."
    )


def load_eval_tokens(
    eval_set: dict[str, Any], enc: Any, ckpt_path: Path, max_tokens: int | None = None
) -> np.ndarray | TokenStream:
    """The token sequence to score: a prepared split (checked to match the tokenizer) or text
    from any source, encoded with the checkpoint's tokenizer."""
    from parrot_lm.data.shards import read_meta
    from parrot_lm.data.sources import iter_documents
    from parrot_lm.data.tokenizer import encode_documents, load_tokenizer
    from parrot_lm.runs.identity import vocabulary_sha256

    if eval_set["kind"] == "prepared":
        data_dir = Path(eval_set.get("data_dir") or run_data_dir(ckpt_path))
        meta = read_meta(data_dir)
        if meta["vocab_size"] != enc.n_vocab or meta["eot_id"] != enc.eot_token:
            raise DataError(
                f"{data_dir} was tokenized with another vocabulary ({meta['vocab_size']} tokens, "
                f"EOT {meta['eot_id']}) than the checkpoint's ({enc.n_vocab}, EOT "
                f"{enc.eot_token}); evaluate on text (eval_set=text) or on matching data."
            )
        if vocabulary_sha256(load_tokenizer(meta["tokenizer"], data_dir)) != vocabulary_sha256(enc):
            raise DataError(
                f"{data_dir} was tokenized with another vocabulary than the checkpoint's (same "
                "size, other tokens); evaluate on text (eval_set=text) or on matching data."
            )
        split = eval_set.get("split", "val")
        if split not in meta["splits"]:
            raise DataError(f"{data_dir} has no {split!r} split ({', '.join(meta['splits'])}).")
        shards = [(data_dir / s["file"], s["num_tokens"]) for s in meta["splits"][split]["shards"]]
        tokens: np.ndarray | TokenStream = TokenStream(shards, meta["dtype"])
    elif eval_set["kind"] == "text":
        docs = list(iter_documents(eval_set["source"]))
        if eval_set.get("join") is not None:
            ids = enc.encode_ordinary(eval_set["join"].join(docs))
        else:
            ids = [i for doc in encode_documents(enc, docs) for i in doc]
        tokens = np.asarray(ids, dtype=np.int64)
    else:
        raise ConfigError(f"Unknown eval_set.kind {eval_set['kind']!r}; expected prepared or text.")
    if max_tokens is not None and max_tokens < len(tokens):
        tokens = np.asarray(tokens[0:max_tokens])
    return tokens
