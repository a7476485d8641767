"""A padded vocabulary (model.vocab_multiple) trains, and sampling never picks a padded id."""

from __future__ import annotations

import torch

from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import complete_texts
from parrot_lm.runs.loading import load_model
from tests.helpers import SMALL_CORPUS, TINY_MODEL, fit


class _PreferPadding(torch.nn.Module):
    """A head whose padded rows win every argmax and most of the probability mass."""

    def __init__(self, head: torch.nn.Linear, first_padded: int) -> None:
        super().__init__()
        self.head, self.first_padded = head, first_padded

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.head(h).clone()
        logits[..., self.first_padded :] += 100.0
        return logits


def test_a_padded_vocab_trains_and_sampling_never_produces_padded_ids(tmp_path, small_data_dir):
    run_dir = tmp_path / "run"
    fit(
        tmp_path,
        *TINY_MODEL,
        *SMALL_CORPUS,
        "model.vocab_multiple=64",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.max_steps=2",
        "val_every_n_steps=2",
        "sample.max_new_tokens=0",
        f"paths.output_dir={run_dir}",
        f"paths.data_dir={small_data_dir}",
    )
    loaded = load_model(run_dir)
    assert loaded.tokenizer.n_vocab == 300
    assert loaded.model.cfg.vocab_size == 320  # 300 rounded up to a multiple of 64
    loaded.model.lm_head = _PreferPadding(loaded.model.lm_head, 300)
    for temperature in (0.0, 1.0):  # greedy and sampled: both would pick a padded id unmasked
        params = SamplingParams(max_new_tokens=12, temperature=temperature, seed=1)
        texts = complete_texts(loaded.model, loaded.tokenizer, ["Once upon", "The"], params)
        assert all(isinstance(t, str) for t in texts)
    sampled = SamplingParams(max_new_tokens=12, temperature=1.0)
    ids = generate_tokens(loaded.model, [[1, 2, 3]], sampled, vocab_limit=300)
    assert ids[0] and max(ids[0]) < 300
