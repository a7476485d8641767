"""`parrot-generate` / `python scripts/generate.py ckpt=<run dir> prompt="Once"`: sample text
from a checkpoint (settings in conf/generate.yaml).

Prompts from `prompt=...`, a file (`prompts_file=prompts.txt`, one per line) or stdin (`-`).
`leaderboard=true` prints only the generated continuations, one block per prompt, for
automated grading.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from parrot_lm.core.cli import CONF_DIR, ckpt_alias, compose_config, exit_on_user_error, require
from parrot_lm.core.errors import ConfigError
from parrot_lm.core.io import storage_error
from parrot_lm.generation.params import SamplingParams

log = logging.getLogger("parrot_lm.generate")


def read_prompts(prompt: str | None, prompts_file: str | None) -> list[str]:
    """The prompts to continue: the non-blank lines of `prompts_file` ("-": stdin) if given,
    else `prompt` ("-": all of stdin) as one prompt."""
    if prompts_file is not None:
        if prompts_file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = read_prompt_lines(Path(prompts_file))
        prompts = [line for line in lines if line.strip()]
        if not prompts:
            raise ConfigError(f"prompts_file {prompts_file} holds no prompt.")
        return prompts
    text = sys.stdin.read() if prompt == "-" else prompt
    if text is None or not str(text).strip():
        raise ConfigError("The prompt is empty; give prompt=<text>, prompts_file=<file> or stdin.")
    return [str(text)]


def read_prompt_lines(path: Path) -> list[str]:
    """The lines of a prompts file; one sentence naming it when it is missing, unreadable or not
    UTF-8 text."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"prompts_file {path} {what}.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"prompts_file {path} line {line} is not UTF-8 text ({e.reason}); save it as UTF-8."
        ) from e
    except OSError as e:
        raise storage_error(path, e, "read") from e


def sampling_params(cfg: Any) -> SamplingParams:
    """conf/generate.yaml's sampling keys as a SamplingParams (ConfigError when out of range)."""
    from omegaconf import OmegaConf

    stop = cfg.get("stop")
    return SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        seed=cfg.seed,
        stop=OmegaConf.to_container(stop) if OmegaConf.is_config(stop) else stop,
    )


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Print the continuation of each prompt; argv: Hydra overrides (None: sys.argv[1:])."""
    argv = ckpt_alias(sys.argv[1:] if argv is None else list(argv))
    cfg = compose_config(str(CONF_DIR), "generate", argv)
    require(cfg, "ckpt")
    if cfg.leaderboard:  # stdout is graded: nothing but the text
        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = sampling_params(cfg)
    batch_size = cfg.batch_size
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    prompts = read_prompts(cfg.prompt, cfg.prompts_file)

    import torch

    from parrot_lm.core.hardware import pick_device
    from parrot_lm.generation.text import complete_texts
    from parrot_lm.runs.loading import load_model

    loaded = load_model(cfg.ckpt, pick_device(cfg.device), cfg.tokenizer_dir, cfg.outputs_dir)
    log.info("Loaded %s (step %d)", loaded.path, loaded.step)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        seed = None if params.seed is None else params.seed + start
        with torch.inference_mode():
            texts = complete_texts(
                loaded.model,
                loaded.tokenizer,
                batch,
                dataclasses.replace(params, seed=seed),
                stop_at_eot=cfg.stop_at_eot,
                use_cache=cfg.use_cache,
            )
        for prompt, text in zip(batch, texts, strict=True):
            print(text if cfg.leaderboard else f"{prompt}{text}\n---", flush=True)
