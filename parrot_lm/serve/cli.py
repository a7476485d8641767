"""`parrot-chat` / `python scripts/chat.py`: chat with checkpoints in the browser, and serve
them to OpenAI-compatible clients (settings in conf/chat.yaml).

Then open http://127.0.0.1:8000/. Overrides as for the other commands:
`python scripts/chat.py port=8080 outputs_dir=/data/runs max_concurrent=4`.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import Any

from parrot_lm.core.cli import CONF_DIR, compose_config, exit_on_user_error
from parrot_lm.core.errors import ConfigError

log = logging.getLogger("parrot_lm.chat")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _check_process_options(cfg: Any) -> None:
    """The keys that are not Settings': uvicorn's log level and torch's CPU threads."""
    if str(cfg.log_level) not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}; got {cfg.log_level}.")
    threads = cfg.cpu_threads
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"cpu_threads must be an integer >= 1 or null; got {threads!r}.")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; argv: Hydra overrides of conf/chat.yaml (None: sys.argv[1:])."""
    cfg = compose_config(str(CONF_DIR), "chat", sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from parrot_lm.serve.settings import Settings, bind_warning

    settings = Settings.from_config(cfg)
    _check_process_options(cfg)
    if not settings.outputs_dir.is_dir():
        raise ConfigError(
            f"outputs_dir {settings.outputs_dir} does not exist; train a model first "
            "(make train) or point outputs_dir=<dir> at a folder holding checkpoints."
        )
    try:
        import uvicorn

        from parrot_lm.serve.app import create_app
    except ImportError as e:
        raise ConfigError(
            f"The chat server needs fastapi and uvicorn ({e.name} is missing): "
            "pip install -e '.[chat]'."
        ) from None
    if cfg.cpu_threads is not None:
        import torch

        torch.set_num_threads(cfg.cpu_threads)
    app = create_app(settings)
    found = app.state.catalog.scan()
    if found:
        log.info("%d checkpoint(s) under %s", len(found), settings.outputs_dir)
    else:
        log.warning(
            "No checkpoint under %s yet; train one (make train) and reload the page.",
            settings.outputs_dir,
        )
    warning = bind_warning(settings.host, settings.port)
    if warning:
        log.warning(warning)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info("Chat page: http://%s:%d/  OpenAI API base: http://%s:%d/v1", shown,
             settings.port, shown, settings.port)  # fmt: skip
    sock = bind(settings.host, settings.port)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=str(cfg.log_level)
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port for uvicorn to serve on, bound here so that a port in
    use or a host that is not this machine's is one ConfigError sentence, not uvicorn's log.

    Raises ConfigError.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(
            f"host={host} is not a name or address here ({e}); use host=127.0.0.1."
        ) from e
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"Port {port} on {host} is already in use; stop what serves there or pick "
                "another port=<n>."
            ) from e
        raise ConfigError(
            f"Cannot serve on {host}:{port} ({e.strerror or e}); use host=127.0.0.1 or another "
            "port=<n>."
        ) from e
    return sock
