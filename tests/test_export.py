"""Export to Hugging Face Llama and plain safetensors: same logits, same greedy text, same token
ids as ParrotLM; atomic output; one-sentence CLI errors. Tiny random models, no network."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from parrot_lm.core.errors import ExportError, StorageError
from parrot_lm.data.tokenizer import (
    RANKS_FILE,
    SPEC_FILE,
    CharTokenizer,
    encoding_from_ranks,
    save_ranks,
    save_tokenizer_dir,
    train_bpe,
)
from parrot_lm.export.exporter import EXPORT_MARKER, export_checkpoint
from parrot_lm.export.hf import hf_config, hf_state_dict
from parrot_lm.export.safetensors import (
    EXPORT_TOKENIZER_DIR,
    WEIGHTS_FILE,
    load_safetensors_export,
)
from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig
from tests.conftest import ROOT, assert_user_error, run_cli, tree_sha256

transformers = pytest.importorskip("transformers")

EXPORT_SCRIPT = str(ROOT / "scripts" / "export.py")
TEXTS = [
    "Once upon a time there was a little fox who liked to run in the park.",
    "The quick brown fox jumps over the lazy dog, and the dog didn't mind.",
    "She said: 'It's 2024!'  Then they ran,\tand ran\n\nand ran again.",
    "Café, naïve, Straße: a few accents; 日本語 and 🙂 too.",
] * 3
SAMPLE = "Once upon a time, the fox said: 'Hello!'  It's 2024.\n\tNaïve café 日本 🙂 unseen Ωμέγα"


@pytest.fixture(scope="module")
def bpe():
    ranks = train_bpe(TEXTS, 300)
    return ranks, encoding_from_ranks("bpe300", ranks)


def tiny_config(vocab_size: int, tie: bool) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size,
        context_length=32,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,  # grouped-query attention
        d_ff=64,
        rope_theta=5000.0,
        tie_embeddings=tie,
    )


def random_model(cfg: GPTConfig, seed: int = 0) -> GPT:
    """Random weights with norm gains away from 1, so a swapped or dropped weight shows."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.2)
    return model.eval()


def make_run(root: Path, model: GPT, spec: dict, data_dir: Path) -> Path:
    """A run dir as training leaves it: checkpoints/last.ckpt and tokenizer/."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {
        "state_dict": {"model." + k: v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model": model.cfg.to_dict(), "optim": {}, "total_steps": 1},
        "global_step": 7,
    }
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    save_tokenizer_dir(spec, data_dir, run / "tokenizer")
    return run


def make_bpe_run(root: Path, bpe, tie: bool = True, pad_vocab: int = 0) -> tuple[Path, GPT]:
    ranks, enc = bpe
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    save_ranks(ranks, data_dir / RANKS_FILE)
    model = random_model(tiny_config(enc.n_vocab + pad_vocab, tie))
    spec = {"kind": "bpe", "file": RANKS_FILE, "name": "bpe300"}
    return make_run(root, model, spec, data_dir), model


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


# ---- CLI ----------------------------------------------------------------------------------


def test_cli_export_and_errors(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    proc = run_cli([EXPORT_SCRIPT, f"ckpt={run}", "format=safetensors"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run / "export" / "safetensors"
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert (out / WEIGHTS_FILE).is_file()

    proc = run_cli([EXPORT_SCRIPT, f"ckpt={run}", "format=safetensors"], cwd=tmp_path)
    assert_user_error(proc, "already exists and is not empty; pass force=true")


def fill_run(run: Path) -> None:
    """What a trained run holds besides its checkpoint: config, Hydra record, logs, events."""
    (run / "run_config.yaml").write_text("seed: 1\n")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    (run / "train.log").write_text("step 7\n")
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.1").write_bytes(b"\x00events")
    (run / "checkpoints" / "step0000007.ckpt").write_bytes(b"step 7")


@pytest.mark.parametrize(
    "where, fragment",
    [
        ("run", "holds the checkpoint being exported"),  # issue 16: out=<run> force=true
        ("run/checkpoints", "holds the checkpoint being exported"),
        (".", "holds the checkpoint being exported"),
        ("other", "is a run dir"),
        ("parent_of_other", "is not empty and is not an earlier export"),
        ("run/tokenizer", "is not empty and is not an earlier export"),
    ],
)
def test_cli_force_never_deletes_a_run(tmp_path, bpe, where, fragment):
    """`force=true` may replace an earlier export only: a run dir, the checkpoint's own dir,
    a dir holding a run, or any other non-empty dir is refused with a sentence, and every file
    is byte for byte as it was."""
    run, _ = make_bpe_run(tmp_path, bpe)
    fill_run(run)
    other = tmp_path / "parent_of_other" / "other"
    (other / "checkpoints").mkdir(parents=True)
    fill_run(other)
    paths = {"other": other, "parent_of_other": other.parent, ".": tmp_path}
    out = paths.get(where, tmp_path / where)
    before = tree_sha256(tmp_path)
    proc = run_cli(
        [EXPORT_SCRIPT, f"ckpt={run}", f"out={out}", "format=safetensors", "force=true"],
        cwd=tmp_path,
    )
    assert_user_error(proc, fragment)
    assert tree_sha256(tmp_path) == before


def test_cli_missing_ckpt_argument(tmp_path):
    assert_user_error(run_cli([EXPORT_SCRIPT], cwd=tmp_path), "Say which checkpoint to export")


def test_cli_missing_checkpoint(tmp_path):
    proc = run_cli([EXPORT_SCRIPT, f"ckpt={tmp_path / 'nope.ckpt'}"], cwd=tmp_path)
    assert_user_error(proc, "does not exist")


def test_cli_checkpoint_without_tokenizer(tmp_path, bpe):
    run, _ = make_bpe_run(tmp_path, bpe)
    lone = tmp_path / "lone"
    lone.mkdir()
    (run / "checkpoints" / "last.ckpt").rename(lone / "model.ckpt")
    proc = run_cli([EXPORT_SCRIPT, f"ckpt={lone / 'model.ckpt'}"], cwd=tmp_path)
    assert_user_error(proc, "No tokenizer next to")
    assert not (lone / "export").exists()
