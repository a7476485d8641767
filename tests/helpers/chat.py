"""Shared by the chat tests: a tiny trained run in an outputs-like dir, and a real uvicorn server
on a free local port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.config import QUIET, SMALL_CORPUS, TINY_MODEL, compose_train
from tests.helpers.shared import build_once

RUN = "runs/tiny-chat"
LAST = f"{RUN}/checkpoints/last.ckpt"
STEPS = 40


def train_tiny_outputs(outputs: Path, data_dir: Path, steps: int = STEPS) -> Path:
    """`outputs/runs/tiny-chat`: the tiny model trained `steps` steps on the small stories
    corpus, with TensorBoard events (val loss every half run) and step checkpoints. Validation
    scores the whole (tiny) val split: a limited one is logged as val/loss_partial, which the
    checkpoint listing does not show as the val loss."""
    from parrot_lm.training.run import run

    overrides = [
        *TINY_MODEL,
        *SMALL_CORPUS,
        *QUIET,
        "data.batch_size=8",
        f"paths.output_dir={outputs / RUN}",
        f"paths.data_dir={data_dir}",
        "logger=tensorboard",
        f"trainer.max_steps={steps}",
        f"val_every_n_steps={steps // 2}",
        f"ckpt_every_n_steps={steps // 2}",
        "trainer.log_every_n_steps=10",
        "callbacks.text_samples.max_new_tokens=2",
        "optim.warmup_steps=2",
    ]
    run(compose_train(outputs, overrides))
    assert (outputs / LAST).is_file()
    return outputs


def shared_tiny_outputs(tmp_path_factory, data_dir: Path) -> Path:
    """`train_tiny_outputs` once per test session, also across pytest-xdist workers (the chat
    API and browser test files run in different workers). Read-only: copy it to change it."""
    return build_once(
        tmp_path_factory, "chat-outputs", lambda path: train_tiny_outputs(path, data_dir)
    )


@contextmanager
def serve(app) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 and a free port; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The test server did not start.")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def long_seed(url: str, path: str, body: dict, max_seeds: int = 50) -> int:
    """A seed whose reply to `body` runs to its max_tokens: the tiny model may sample
    end-of-text within a few tokens, and tests that cut, stream or watch text need some."""
    import httpx

    for seed in range(max_seeds):
        response = httpx.post(url + path, json={**body, "seed": seed, "stream": False}, timeout=60)
        response.raise_for_status()
        if response.json()["choices"][0]["finish_reason"] == "length":
            return seed
    raise AssertionError(f"No seed in 0..{max_seeds - 1} gives a reply of full length.")
