"""Export to Hugging Face Llama and plain safetensors: same logits, same greedy text, same token
ids as ParrotLM; atomic output; the command's bad input as one sentence (its main(argv) in this
process; the real process: tests/e2e/test_export_cli.py). Tiny random models, no network."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from parrot_lm.core.errors import ExportError, StorageError
from parrot_lm.data.tokenizer import SPEC_FILE, CharTokenizer
from parrot_lm.export.cli import main
from parrot_lm.export.exporter import EXPORT_MARKER, export_checkpoint
from parrot_lm.export.hf import hf_config, hf_state_dict
from parrot_lm.export.safetensors import (
    EXPORT_TOKENIZER_DIR,
    WEIGHTS_FILE,
    load_safetensors_export,
)
from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from tests.helpers import assert_user_error, run_main
from tests.helpers.runs import (
    TEXTS,
    bpe_tokenizer,
    make_bpe_run,
    make_run,
    random_model,
    tiny_config,
)

transformers = pytest.importorskip("transformers")

SAMPLE = "Once upon a time, the fox said: 'Hello!'  It's 2024.\n\tNaïve café 日本 🙂 unseen Ωμέγα"


@pytest.fixture(scope="module")
def bpe():
    return bpe_tokenizer()


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied-padded"])
def hf_export(request, tmp_path_factory, bpe):
    """One HF export per embedding layout; the untied one also has a padded vocabulary."""
    tie = request.param
    root = tmp_path_factory.mktemp("hf")
    run, model = make_bpe_run(root, bpe, tie=tie, pad_vocab=0 if tie else 3)
    out = export_checkpoint(run, fmt="hf")
    return out, model


# ---- Hugging Face format ------------------------------------------------------------------


def test_hf_state_dict_names_and_shapes_are_llamas(bpe):
    """The mapping covers exactly LlamaForCausalLM's parameters, with its shapes."""
    cfg = tiny_config(bpe[1].n_vocab, tie=False)
    mapped = hf_state_dict(random_model(cfg).state_dict(), cfg)
    expected = transformers.LlamaForCausalLM(hf_config(cfg, 0)).state_dict()
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in expected.items()}
    with pytest.raises(ValueError, match="blocks.0.attn.rope"):
        hf_state_dict({"blocks.0.attn.rope.weight": torch.zeros(1)}, cfg)


def test_hf_export_layout(hf_export, bpe):
    out, model = hf_export
    assert out.name == "hf" and out.parent.name == "export"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", WEIGHTS_FILE, "generation_config.json", "tokenizer.json"} <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries
    config = json.loads((out / "config.json").read_text())
    cfg = model.cfg
    assert config["model_type"] == "llama"
    assert config["num_key_value_heads"] == cfg.n_kv_heads == 2
    assert config["tie_word_embeddings"] is cfg.tie_embeddings
    # The padded model's 3 extra rows are dropped: HF sees the tokenizer's vocabulary.
    assert (
        config["vocab_size"] == bpe[1].n_vocab == cfg.vocab_size - (0 if cfg.tie_embeddings else 3)
    )
    assert config["max_position_embeddings"] == cfg.context_length
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == config["eos_token_id"]


def test_hf_logits_match(hf_export, bpe):
    out, model = hf_export
    n_vocab = bpe[1].n_vocab
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    idx = torch.randint(0, n_vocab, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(idx)[..., :n_vocab], hf(input_ids=idx).logits
    assert theirs.dtype == torch.float32 and theirs.shape == ours.shape
    assert (ours - theirs).abs().max().item() < 1e-4


def test_hf_greedy_generation_matches(hf_export, bpe):
    out, model = hf_export
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    prompt = torch.tensor([[5, 17, 42, 99, 3, 250, 8, 1]])
    ours = torch.tensor(
        generate_tokens(
            model, prompt.tolist(), SamplingParams(20, temperature=0.0), vocab_limit=bpe[1].n_vocab
        )[0]
    )
    theirs = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False
    )[0, prompt.shape[1] :]
    # HF stops early at EOS (our greedy does not): compare what it produced, EOS included.
    assert theirs.tolist() == ours[: len(theirs)].tolist()
    assert len(theirs) == 20 or theirs[-1].item() == hf.generation_config.eos_token_id


def test_hf_tokenizer_matches_tiktoken(hf_export, bpe):
    out, _ = hf_export
    enc = bpe[1]
    tok = transformers.AutoTokenizer.from_pretrained(out)
    for text in [SAMPLE, *TEXTS[:4], "  leading and trailing  ", ""]:
        ids = tok(text)["input_ids"]
        assert ids == enc.encode_ordinary(text)
        assert tok.decode(ids) == text
    assert tok.eos_token_id == enc.eot_token


def test_hf_char_tokenizer_exports_weights_only(tmp_path, caplog):
    chars = CharTokenizer.train(TEXTS)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    chars.save(data_dir / "chars.json")
    model = random_model(tiny_config(chars.n_vocab, tie=True))
    run = make_run(tmp_path, model, {"kind": "char", "file": "chars.json"}, data_dir)
    with caplog.at_level(logging.WARNING, logger="parrot_lm.export.hf"):
        out = export_checkpoint(run, out=tmp_path / "hf-char", fmt="hf")
    assert "char" in caplog.text and "tokenizer" in caplog.text
    assert not (out / "tokenizer.json").exists()
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    idx = torch.tensor([chars.encode_ordinary("the fox ran")])
    with torch.no_grad():
        assert (model(idx) - hf(input_ids=idx).logits).abs().max().item() < 1e-4


# ---- Plain safetensors format -------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_safetensors_round_trip(tmp_path, bpe, tie):
    from safetensors import safe_open

    run, model = make_bpe_run(tmp_path, bpe, tie=tie)
    out = export_checkpoint(run / "checkpoints" / "last.ckpt", fmt="safetensors")
    assert out == run / "export" / "safetensors"
    with safe_open(out / WEIGHTS_FILE, "pt") as f:
        assert ("lm_head.weight" in f.keys()) is not tie  # a tied head is stored once
        assert f.metadata()["step"] == "7"
    assert json.loads((out / "config.json").read_text()) == model.cfg.to_dict()
    assert (out / EXPORT_TOKENIZER_DIR / SPEC_FILE).is_file()
    loaded = load_safetensors_export(out)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, restored[name]), name
    if tie:
        assert loaded.lm_head.weight is loaded.tok_emb.weight


def test_safetensors_dtype(tmp_path, bpe):
    from safetensors.torch import load_file

    run, _ = make_bpe_run(tmp_path, bpe)
    out = export_checkpoint(run, out=tmp_path / "bf16", fmt="safetensors", dtype="bfloat16")
    assert {t.dtype for t in load_file(out / WEIGHTS_FILE).values()} == {torch.bfloat16}


def test_tokenizer_dir_override(tmp_path, bpe):
    """A checkpoint copied away from its run exports when told where the tokenizer is."""
    run, _ = make_bpe_run(tmp_path, bpe)
    lone = tmp_path / "lone"
    lone.mkdir()
    (run / "checkpoints" / "last.ckpt").rename(lone / "model.ckpt")
    out = export_checkpoint(lone / "model.ckpt", fmt="safetensors", tokenizer_dir=run / "tokenizer")
    assert out == lone / "export" / "safetensors"
    assert (out / EXPORT_TOKENIZER_DIR / SPEC_FILE).is_file()


# ---- Atomic output ------------------------------------------------------------------------


def test_failed_export_leaves_nothing(tmp_path, bpe, monkeypatch):
    import parrot_lm.export.exporter as export

    run, _ = make_bpe_run(tmp_path, bpe)

    def half_write(loaded, tok_dir, dest, dtype):
        (dest / WEIGHTS_FILE).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_safetensors", half_write)
    with pytest.raises(StorageError, match="disk full"):
        export_checkpoint(run, fmt="safetensors")
    assert not (run / "export").exists() or not any((run / "export").iterdir())


def test_force_replaces_an_earlier_export(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    out = tmp_path / "out"
    export_checkpoint(run, out=out, fmt="hf")
    marker = json.loads((out / EXPORT_MARKER).read_text())
    assert marker["format"] == "hf" and marker["step"] == 7
    (out / "stale.txt").write_text("old")
    export_checkpoint(run, out=out, fmt="safetensors", force=True)
    assert not (out / "stale.txt").exists() and (out / WEIGHTS_FILE).is_file()
    assert json.loads((out / EXPORT_MARKER).read_text())["format"] == "safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "run"]


def test_force_never_replaces_a_dir_that_is_not_an_earlier_export(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty and is not an earlier export"):
        export_checkpoint(run, out=out, fmt="safetensors", force=True)
    assert [p.name for p in out.iterdir()] == ["todo.txt"]
    # An earlier export that somebody moved a run into is not replaced either.
    export = tmp_path / "export"
    export_checkpoint(run, out=export, fmt="safetensors")
    (export / "sub" / "checkpoints").mkdir(parents=True)
    (export / "sub" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    with pytest.raises(ExportError, match="holds a run or checkpoint"):
        export_checkpoint(run, out=export, fmt="safetensors", force=True)
    assert (export / "sub" / "checkpoints" / "last.ckpt").read_bytes() == b"weights"


# ---- The command's bad input, through main(argv) in this process ---------------------------


def test_cli_missing_ckpt_argument(tmp_path):
    assert_user_error(run_main(main, []), "Say which checkpoint to export")


def test_cli_missing_checkpoint(tmp_path):
    proc = run_main(main, [f"ckpt={tmp_path / 'nope.ckpt'}"])
    assert_user_error(proc, "does not exist")


def test_cli_checkpoint_without_tokenizer(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    lone = tmp_path / "lone"
    lone.mkdir()
    (run / "checkpoints" / "last.ckpt").rename(lone / "model.ckpt")
    proc = run_main(main, [f"ckpt={lone / 'model.ckpt'}"])
    assert_user_error(proc, "No tokenizer next to")
    assert not (lone / "export").exists()
