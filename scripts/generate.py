"""Sample text from a checkpoint: `python scripts/generate.py ckpt=<run dir> prompt="Once"`.

Prompts from `prompt=...`, a file (`prompts_file=prompts.txt`, one per line) or stdin (`-`).
`leaderboard=true` prints only the generated continuations, one block per prompt, for
automated grading. The code is `parrot_lm.generation.cli` (also the `parrot-generate` command).
"""

from parrot_lm.generation.cli import main

if __name__ == "__main__":
    main()
