"""The chat server's pieces, below the server: streaming token generation, whole-character
UTF-8 streaming, stop strings, the chat template, the bind-address warning and the sampling
defaults. The server itself: tests/integration/test_chat_api.py."""

from __future__ import annotations

import pytest
import torch

from parrot_lm.core.errors import ConfigError
from parrot_lm.data.tokenizer import byte_ranks, encoding_from_ranks
from parrot_lm.generation.decoding import generate_tokens, iter_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.serve.settings import Settings, bind_warning, is_local_host
from parrot_lm.serve.streaming import StopFilter, Utf8StreamDecoder
from parrot_lm.serve.templates import CHAT_STOP, TemplateError, render_chat
from tests.helpers import CONF_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sharp_model(context: int = 16) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=97, context_length=context, d_model=32, n_layers=2, n_heads=2, d_ff=64
    )
    model = GPT(cfg).eval()
    for p in model.parameters():
        p.data.normal_(0.0, 0.3)
    return model


def test_iter_tokens_yields_what_generate_tokens_returns():
    model = sharp_model(context=16)
    for temperature, top_k, top_p in [(0.0, None, None), (1.0, 10, 0.9)]:
        params = SamplingParams(50, temperature=temperature, top_k=top_k, top_p=top_p, seed=5)
        batch = generate_tokens(model, [[1, 2, 3]], params, vocab_limit=90)[0]
        streamed = list(iter_tokens(model, [1, 2, 3], params, vocab_limit=90))
        assert streamed == batch and len(streamed) == 50  # slid past the 16-token context
        assert max(streamed) < 90
    greedy = SamplingParams(5, temperature=0)
    first = list(iter_tokens(model, [4, 5], greedy))[0]
    assert list(iter_tokens(model, [4, 5], greedy, eot_id=first)) == []
    with pytest.raises(ValueError):
        next(iter_tokens(model, [], greedy))


def test_utf8_stream_decoder_emits_whole_characters_only():
    enc = encoding_from_ranks("byte", byte_ranks())
    text = "parrot 🦜 café ü"
    ids = enc.encode_ordinary(text)
    assert len(ids) == len(text.encode())  # one token per byte: characters split across tokens
    decoder = Utf8StreamDecoder(enc)
    pieces = [decoder.feed(t) for t in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert pieces[7:11] == ["", "", "", "🦜"]  # four bytes, one character when complete
    # A character cut off at the end is replaced, as Tokenizer.decode(errors="replace") does.
    cut = Utf8StreamDecoder(enc)
    head = "".join(cut.feed(t) for t in ids[:9]) + cut.flush()
    assert head == enc.decode(ids[:9], errors="replace") == "parrot \ufffd"


def test_stop_filter_never_leaks_part_of_a_stop_string():
    f = StopFilter(CHAT_STOP)
    out = [f.feed(p) for p in ["Hi the", "re!\nUs", "er", ": what"]]
    assert out == ["Hi the", "re!", "", ""] and f.stopped
    assert f.flush() == ""
    g = StopFilter(["\nUser:"])
    assert g.feed("a\nUse") == "a"
    assert g.feed("d it") == "\nUsed it"  # not a stop after all: released
    assert g.feed("\n") == "" and g.flush() == "\n" and not g.stopped
    h = StopFilter(["END", "ND!"])
    assert h.feed("the END! x") == "the " and h.stopped  # the earliest stop wins


def test_chat_template():
    prompt = render_chat(
        [
            {"role": "system", "content": "A parrot answers."},
            {"role": "user", "content": "Hello?"},
            {"role": "assistant", "content": "Squawk."},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]},
        ]
    )
    assert (
        prompt == "A parrot answers.\n\nUser: Hello?\nAssistant: Squawk.\nUser: Again\nAssistant:"
    )
    assert render_chat([{"role": "user", "content": "x"}]) == "User: x\nAssistant:"
    for bad, why in [
        ([], "messages is empty"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "system", "content": "x"}], "no user or assistant"),
        ([{"role": "user", "content": "  "}], "Every message is empty"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "Only text"),
    ]:
        with pytest.raises(TemplateError, match=why):
            render_chat(bad)


def test_default_bind_is_local_and_other_hosts_warn():
    from parrot_lm.core.cli import compose_config

    cfg = compose_config(str(CONF_DIR), "chat", [])
    settings = Settings.from_config(cfg)
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert bind_warning(settings.host, settings.port) is None
    for host in ("localhost", "::1", "127.0.0.1", "127.0.0.2"):
        assert is_local_host(host) and bind_warning(host, 8000) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        warning = bind_warning(host, 8000)
        assert warning is not None and "NO authentication" in warning and host in warning


def test_chat_sampling_defaults_are_checked_as_sampling_params():
    from parrot_lm.core.cli import compose_config

    for override, fragment in [
        ("sampling.top_p=1.5", "sampling.top_p must be in (0, 1]; got 1.5."),
        ("sampling.temperature=-1", "sampling.temperature must be >= 0 (0 is greedy)"),
        ("sampling.top_k=-2", "sampling.top_k must be >= 0 (0 turns it off); got -2."),
        ("sampling.max_tokens=0", "sampling.max_tokens must be an integer >= 1"),
        ("sampling.max_tokens=2000", "must be between 1 and max_new_tokens_limit=1024"),
    ]:
        with pytest.raises(ConfigError) as caught:
            Settings.from_config(compose_config(str(CONF_DIR), "chat", [override]))
        assert fragment in str(caught.value), (override, caught.value)
    settings = Settings.from_config(compose_config(str(CONF_DIR), "chat", ["sampling.top_k=0"]))
    assert settings.sampling.top_k is None and settings.sampling.max_new_tokens == 128
