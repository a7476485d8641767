"""Export a trained checkpoint for use outside ParrotLM.

Two formats: `hf`, a Hugging Face `transformers` LlamaForCausalLM directory (config, safetensors
weights, generation config and, for byte-level BPE kinds, the tokenizer), so the model runs in the
HF ecosystem unchanged (only the default LLaMA recipe: RMSNorm, pre-norm, RoPE); and `safetensors`,
our own parameter names and GPTConfig, for every model and for tools that want the raw weights
without pickle (`load_safetensors_export` reads it back).

Exports are written to a temporary sibling directory and renamed into place, so the output is
complete or absent, never half written.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from parrot_lm.core.errors import ConfigError, ExportError
from parrot_lm.core.io import atomic_dir
from parrot_lm.data.tokenizer import CharTokenizer, write_data_gym_files
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.loading import (
    LoadedModel,
    find_tokenizer_dir,
    load_model,
    resolve_checkpoint,
)
from parrot_lm.runs.run_dir import RunDir

if TYPE_CHECKING:
    import tiktoken
    from transformers import LlamaConfig, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

FORMATS = ("hf", "safetensors")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
EXPORT_TOKENIZER_DIR = "tokenizer"
# Checked after building the HF tokenizer: words, digits, punctuation, runs of spaces, non-ASCII.
TOKENIZER_PROBE = "Once upon a time, Lily's cat said: 'Hello!'  It was 2024.\n\tNaïve café 日本 🙂"
TRANSFORMERS_HINT = (
    "format=hf needs the `transformers` package; install it with `pip install -e '.[export]'` "
    "(or `pip install 'transformers>=4.45'`), or use format=safetensors."
)

_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")
# Our per-block parameter names -> HF Llama's, except the fused qkv (split below).
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.proj.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "tok_emb.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


# ---- Hugging Face Llama --------------------------------------------------------------------

# The settings LlamaForCausalLM has: anything else (see GPTConfig's ablation switches) has no
# Llama equivalent.
LLAMA_SETTINGS = {"norm": "rmsnorm", "norm_position": "pre", "pos_encoding": "rope"}


def check_llama_compatible(cfg: GPTConfig) -> None:
    """ConfigError naming every setting that a Llama model cannot represent."""
    other = [
        f"model.{key}={getattr(cfg, key)}"
        for key, llama in LLAMA_SETTINGS.items()
        if getattr(cfg, key) != llama
    ]
    if other:
        raise ConfigError(
            f"The Llama format (format=hf) cannot represent {' and '.join(other)} (Llama is "
            f"{', '.join(f'{k}={v}' for k, v in LLAMA_SETTINGS.items())}); "
            "format=safetensors works for every model."
        )


def hf_state_dict(
    state: dict[str, torch.Tensor], cfg: GPTConfig, vocab_size: int | None = None
) -> dict[str, torch.Tensor]:
    """Our GPT state dict -> LlamaForCausalLM's names, splitting the fused qkv projection.

    RoPE already uses HF's rotate-half layout, so q and k need no row permutation. Any name
    this function does not know raises ValueError, so a model change cannot drop weights
    silently. vocab_size: keep only the first rows of the embedding and head (drops the
    padding of `model.vocab_multiple`).
    """
    vocab_rows = slice(0, vocab_size or cfg.vocab_size)
    q_dim, kv_dim = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name in _TOP_NAMES:
            vocab_sized = name in ("tok_emb.weight", "lm_head.weight")
            out[_TOP_NAMES[name]] = tensor[vocab_rows] if vocab_sized else tensor
            continue
        match = _BLOCK_KEY.fullmatch(name)
        if match is None:
            raise ValueError(f"No Hugging Face name for parameter {name!r}.")
        layer, rest = match.groups()
        prefix = f"model.layers.{layer}."
        if rest == "attn.qkv.weight":
            q, k, v = tensor.split([q_dim, kv_dim, kv_dim], dim=0)
            out[prefix + "self_attn.q_proj.weight"] = q
            out[prefix + "self_attn.k_proj.weight"] = k
            out[prefix + "self_attn.v_proj.weight"] = v
        elif rest in _BLOCK_NAMES:
            out[prefix + _BLOCK_NAMES[rest]] = tensor
        else:
            raise ValueError(f"No Hugging Face name for parameter {name!r}.")
    if cfg.tie_embeddings:  # the tied head shares the embedding; HF's state dict lists both
        out.setdefault("lm_head.weight", out["model.embed_tokens.weight"])
    return out


def hf_config(cfg: GPTConfig, eot_id: int, vocab_size: int | None = None) -> LlamaConfig:
    """The LlamaConfig describing the same network: no biases, SiLU-gated MLP, RMSNorm."""
    check_llama_compatible(cfg)
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size or cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.context_length,
        rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        initializer_range=cfg.init_std,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
    )


def hf_tokenizer(enc: tiktoken.Encoding, model_max_length: int) -> PreTrainedTokenizerFast:
    """A `tokenizers` byte-level BPE equal to the tiktoken encoding, EOT as bos/eos.

    Built from GPT-2 data-gym files (every byte, then one merge per multi-byte token in rank
    order), which is exactly the ranked-merge BPE tiktoken runs. No BOS is prepended, since the
    model was trained without one.
    """
    import tempfile

    from tokenizers import AddedToken, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    eot = enc.decode([enc.eot_token])
    with tempfile.TemporaryDirectory() as tmp:
        vocab_bpe, encoder_json = Path(tmp) / "vocab.bpe", Path(tmp) / "encoder.json"
        write_data_gym_files(enc._mergeable_ranks, vocab_bpe, encoder_json)
        tok = HFTokenizer(models.BPE.from_file(str(encoder_json), str(vocab_bpe)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(eot, special=True)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eot,
        eos_token=eot,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def write_hf(loaded: LoadedModel, dest: Path, dtype: torch.dtype) -> None:
    """Build a real LlamaForCausalLM, load our weights strictly, and let transformers save it."""
    try:
        from transformers import GenerationConfig, LlamaForCausalLM
    except ImportError as e:
        raise ExportError(TRANSFORMERS_HINT) from e

    cfg, enc = loaded.model.cfg, loaded.tokenizer
    # Ids past the tokenizer's (model.vocab_multiple padding) are dropped: HF's generate could
    # otherwise sample them, and no tokenizer can decode them.
    vocab = min(cfg.vocab_size, enc.n_vocab)
    if vocab < cfg.vocab_size:
        log.info(
            "Dropping %d padded vocabulary rows (%d -> %d).",
            cfg.vocab_size - vocab,
            cfg.vocab_size,
            vocab,
        )
    config = hf_config(cfg, enc.eot_token, vocab)
    model = LlamaForCausalLM(config)
    state = hf_state_dict(loaded.model.state_dict(), cfg, vocab)
    model.load_state_dict(state, strict=True)
    model.generation_config = GenerationConfig(
        bos_token_id=enc.eot_token, eos_token_id=enc.eot_token, pad_token_id=enc.eot_token
    )
    model.to(dtype).eval()
    model.save_pretrained(dest)

    if isinstance(enc, CharTokenizer):
        log.warning(
            "Not writing a Hugging Face tokenizer: this model uses the `char` tokenizer, which "
            "is not a byte-level BPE, so map text to ids with ParrotLM's tokenizer instead."
        )
        return
    try:
        hf_tok = hf_tokenizer(enc, cfg.context_length)
    except ValueError as e:
        log.warning("Not writing a Hugging Face tokenizer: %s", e)
        return
    probe_ids = hf_tok.backend_tokenizer.encode(TOKENIZER_PROBE).ids
    if probe_ids != enc.encode_ordinary(TOKENIZER_PROBE):
        log.warning(
            "Not writing a Hugging Face tokenizer: the converted tokenizer does not reproduce "
            "the model's token ids on a probe sentence."
        )
        return
    hf_tok.save_pretrained(dest)


# ---- Plain safetensors ---------------------------------------------------------------------


def write_safetensors(
    loaded: LoadedModel, tokenizer_dir: Path, dest: Path, dtype: torch.dtype
) -> None:
    """Our names and GPTConfig, the tied head stored once, the run's tokenizer dir beside them."""
    from safetensors.torch import save_file

    model = loaded.model
    state = model.state_dict()
    if model.cfg.tie_embeddings:
        del state["lm_head.weight"]  # the same tensor as tok_emb.weight
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    save_file(tensors, dest / WEIGHTS_FILE, metadata={"format": "pt", "step": str(loaded.step)})
    (dest / CONFIG_FILE).write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")
    shutil.copytree(tokenizer_dir, dest / EXPORT_TOKENIZER_DIR)


def load_safetensors_export(path: str | Path) -> GPT:
    """A `format=safetensors` export -> GPT (float32, eval mode); its tokenizer is in
    `<path>/tokenizer/` (read it with `parrot_lm.data.tokenizer.load_tokenizer_dir`)."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise ExportError(f"{path} is not a ParrotLM safetensors export ({name} is missing).")
    model = GPT(GPTConfig(**json.loads((path / CONFIG_FILE).read_text())))
    state = load_file(path / WEIGHTS_FILE)
    if model.cfg.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"{path / WEIGHTS_FILE} does not match {path / CONFIG_FILE}.") from e
    return model.eval()


# ---- Driver --------------------------------------------------------------------------------


def default_out_dir(ckpt_path: Path, fmt: str) -> Path:
    """`<run dir>/export/<format>`; the run dir holds `checkpoints/` (or the .ckpt itself)."""
    return RunDir.of_checkpoint(ckpt_path).export(fmt)


def check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"Export path {out} is a file, not a directory; choose another out=.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"Export directory {out} already exists and is not empty; pass force=true to "
            "replace it, or choose another out=."
        )


def export_checkpoint(
    ckpt: str | Path,
    out: str | Path | None = None,
    fmt: str = "hf",
    force: bool = False,
    dtype: str = "float32",
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """Export a checkpoint (or run dir) and return the output directory."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if fmt == "hf" and importlib.util.find_spec("transformers") is None:
        raise ExportError(TRANSFORMERS_HINT)
    ckpt_path = resolve_checkpoint(ckpt)
    out_dir = Path(out).expanduser() if out else default_out_dir(ckpt_path, fmt)
    check_out_dir(out_dir, force)
    tok_dir = Path(tokenizer_dir).expanduser() if tokenizer_dir else find_tokenizer_dir(ckpt_path)
    loaded = load_model(ckpt_path, tokenizer_dir=tok_dir)
    if fmt == "hf":  # before anything is written
        check_llama_compatible(loaded.model.cfg)
    log.info("Exporting %s (step %d) as %s to %s", ckpt_path, loaded.step, fmt, out_dir)
    with atomic_dir(out_dir) as tmp:
        if fmt == "hf":
            write_hf(loaded, tmp, DTYPES[dtype])
        else:
            write_safetensors(loaded, tok_dir, tmp, DTYPES[dtype])
    return out_dir
