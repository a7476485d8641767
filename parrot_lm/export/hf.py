"""Export to a Hugging Face `transformers` LlamaForCausalLM directory (config, safetensors weights,
generation config and, for byte-level BPE kinds, the tokenizer), so the model runs in the HF
ecosystem unchanged. Only the default LLaMA recipe (RMSNorm, pre-norm, RoPE) has a Llama
equivalent; `check_llama_compatible` names what does not.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from parrot_lm.core.errors import ConfigError, ExportError
from parrot_lm.data.tokenizer import CharTokenizer, write_data_gym_files
from parrot_lm.model import GPTConfig
from parrot_lm.runs.loading import LoadedModel

if TYPE_CHECKING:
    import tiktoken
    from transformers import LlamaConfig, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

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
