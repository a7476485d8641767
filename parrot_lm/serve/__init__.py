"""Serving checkpoints: a chat page and OpenAI-compatible endpoints (`scripts/chat.py`).

Needs the `chat` extra (`pip install -e '.[chat]'`: fastapi, uvicorn). `create_app` is in
`parrot_lm.serve.app`; the checkpoint listing, chat template, settings and streaming text
helpers import without fastapi.
"""
