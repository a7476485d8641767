"""Sample text from a checkpoint: `python scripts/generate.py ckpt=<run dir> prompt="Once"`.

Prompts from `prompt=...`, a file (`prompts_file=prompts.txt`, one per line) or stdin (`-`).
`leaderboard=true` prints only the generated continuations, one block per prompt, for
automated grading.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parrot_lm.core.cli import compose_config, exit_on_user_error, require  # noqa: E402
from parrot_lm.core.errors import ConfigError  # noqa: E402


def read_prompts(prompt: str | None, prompts_file: str | None) -> list[str]:
    if prompts_file is not None:
        if prompts_file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            path = Path(prompts_file)
            if not path.is_file():
                raise ConfigError(f"prompts_file {path} does not exist.")
            lines = path.read_text(encoding="utf-8").splitlines()
        prompts = [line for line in lines if line.strip()]
        if not prompts:
            raise ConfigError(f"prompts_file {prompts_file} holds no prompt.")
        return prompts
    text = sys.stdin.read() if prompt == "-" else prompt
    if text is None or not str(text).strip():
        raise ConfigError("The prompt is empty; give prompt=<text>, prompts_file=<file> or stdin.")
    return [str(text)]


@exit_on_user_error
def main(argv: list[str]) -> None:
    cfg = compose_config(str(ROOT / "conf"), "generate", argv)
    require(cfg, "ckpt")
    if cfg.leaderboard:  # stdout is graded: nothing but the text
        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if cfg.max_new_tokens < 1 or cfg.batch_size < 1 or cfg.temperature < 0:
        raise ConfigError("max_new_tokens and batch_size must be >= 1 and temperature >= 0.")
    prompts = read_prompts(cfg.prompt, cfg.prompts_file)

    import torch

    from parrot_lm.core.hardware import pick_device
    from parrot_lm.generation.text import complete_texts
    from parrot_lm.runs.loading import load_model

    loaded = load_model(cfg.ckpt, pick_device(cfg.device), cfg.tokenizer_dir)
    logging.getLogger(__name__).info("Loaded %s (step %d)", loaded.path, loaded.step)
    for start in range(0, len(prompts), cfg.batch_size):
        batch = prompts[start : start + cfg.batch_size]
        with torch.inference_mode():
            texts = complete_texts(
                loaded.model,
                loaded.tokenizer,
                batch,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_k,
                cfg.top_p,
                seed=cfg.seed + start,
                stop_at_eot=cfg.stop_at_eot,
                use_cache=cfg.use_cache,
            )
        for prompt, text in zip(batch, texts, strict=True):
            print(text if cfg.leaderboard else f"{prompt}{text}\n---", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
