"""Strided perplexity: matches a naive per-token loop, scores every token once, and gives bits
per byte and word-level perplexity (by hand, with a bigram model whose logits the test sets).
The evaluate command on a trained run: tests/e2e/test_evaluate_cli.py."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parrot_lm.data.dataset import strided_windows
from parrot_lm.data.tokenizer import byte_ranks, encoding_from_ranks
from parrot_lm.evaluation.perplexity import WordCount, evaluate_perplexity, token_byte_lengths
from parrot_lm.model import GPT, GPTConfig

CTX = 16


def small_model() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=CTX, d_model=32, n_layers=2, n_heads=2))
    for p in model.parameters():
        p.data.normal_(0.0, 0.2)
    return model.eval()


def naive_mean_nll(model: GPT, tokens: np.ndarray, stride: int) -> float:
    """Token t is scored by the first window reaching it: window k = [k*stride, k*stride + ctx)."""
    total = 0.0
    for t in range(1, len(tokens)):
        k = max(0, math.ceil((t - CTX) / stride))
        context = torch.tensor(tokens[k * stride : t], dtype=torch.long)[None]
        logp = F.log_softmax(model(context)[0, -1].double(), dim=-1)
        total -= float(logp[int(tokens[t])].detach())
    return total / (len(tokens) - 1)


@pytest.mark.parametrize("stride", [CTX, 5, 1])
def test_perplexity_equals_naive_per_token_loop(stride):
    model = small_model()
    tokens = np.random.default_rng(0).integers(0, 50, size=101)
    expected = naive_mean_nll(model, tokens, stride)
    for batch_size in (1, 4):
        got = evaluate_perplexity(model, tokens, stride, batch_size)
        assert got["tokens"] == 100
        assert got["loss"] == pytest.approx(expected, abs=1e-5)
        assert got["ppl"] == pytest.approx(math.exp(expected), rel=1e-5)


def test_windows_score_every_token_once():
    for n, stride in [(101, 16), (17, 16), (2, 16), (1000, 7), (50, 1)]:
        scored = []
        for begin, end, n_new in strided_windows(n, CTX, stride):
            assert 0 < end - begin <= CTX and 0 < n_new <= end - begin
            scored += range(end - n_new + 1, end + 1)
        assert scored == list(range(1, n))
    with pytest.raises(Exception, match="stride must be between 1 and the context"):
        strided_windows(100, CTX, CTX + 1)


def test_bits_per_byte_of_a_byte_model_is_loss_over_ln2():
    enc = encoding_from_ranks("byte", byte_ranks())
    model = GPT(GPTConfig(vocab_size=enc.n_vocab, context_length=CTX, d_model=32, n_layers=1,
                          n_heads=2)).eval()  # fmt: skip
    tokens = np.array(enc.encode_ordinary("héllo wörld, " * 10))
    got = evaluate_perplexity(model, tokens, 8, 4, byte_lengths=token_byte_lengths(enc))
    assert got["bytes"] == len(tokens) - 1
    assert got["bits_per_byte"] == pytest.approx(got["loss"] / math.log(2), rel=1e-6)


class Bigram(torch.nn.Module):
    """Logits that depend only on the previous token: a table we set, so the NLL of a text is a
    sum we can write out without the windows."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.cfg = GPTConfig(vocab_size=vocab, context_length=CTX)
        self.table = torch.nn.Parameter(
            torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x]


def test_word_perplexity_by_hand():
    enc = encoding_from_ranks("byte", byte_ranks())
    model = Bigram(enc.n_vocab).eval()
    # "é" is 2 bytes and EOT separates two documents with no whitespace around it.
    text = "the cat sat\non  the mat, héllo"
    tokens = np.array(enc.encode_ordinary(text) + [enc.eot_token] + enc.encode_ordinary("end."))
    logp = F.log_softmax(model.table.detach().double(), dim=-1)
    nll = -sum(float(logp[tokens[t - 1], tokens[t]]) for t in range(1, len(tokens)))
    # Scored text: all but the first token, "he cat sat\non  the mat, héllo" + EOT + "end.":
    # he, cat, sat, on, the, mat,, héllo, end. (EOT is a document break, not a word).
    words = 8
    for stride, batch_size in [(CTX, 1), (3, 1), (3, 4), (1, 2)]:
        got = evaluate_perplexity(model, tokens, stride, batch_size, tokenizer=enc)
        assert got["words"] == words, (stride, batch_size)
        assert got["word_ppl"] == pytest.approx(math.exp(nll / words), rel=1e-5)
        # The same total NLL over tokens or over words: ppl = word_ppl ** (words / tokens).
        assert got["ppl"] == pytest.approx(got["word_ppl"] ** (words / got["tokens"]), rel=1e-5)


def test_word_count_of_pieces_equals_that_of_the_whole_text():
    """A word or a UTF-8 character split between two batches counts once; a cut byte is U+FFFD."""
    enc = encoding_from_ranks("byte", byte_ranks())
    ids = np.array(enc.encode_ordinary(" héllo wörld ünd  a\tb "))
    whole = len(enc.decode_bytes(ids.tolist()).decode("utf-8", errors="replace").split())
    assert whole == 5
    for cut in range(len(ids) + 1):
        count = WordCount(enc)
        count.update(ids[:cut])
        count.update(ids[cut:])
        assert count.finish() == whole, cut
    truncated = WordCount(enc)
    truncated.update(ids[:3])  # " h" and the first byte of "é"
    assert truncated.finish() == 1
