"""Chat with checkpoints in the browser, and serve them to OpenAI-compatible clients.

`python scripts/chat.py` (or `make chat`), then open http://127.0.0.1:8000/. Overrides as for the
other scripts: `python scripts/chat.py port=8080 outputs_dir=/data/runs max_concurrent=4`.
The page, the endpoints and the limits are described in the README ("Chat and serve"). The code
is `parrot_lm.serve.cli` (also the `parrot-chat` command).
"""

from parrot_lm.serve.cli import main

if __name__ == "__main__":
    main()
