"""The chat server's settings (conf/chat.yaml), checked where they are born."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    """What the server may do: where checkpoints are, how much one request and all requests
    together may cost, and the sampling defaults for fields a request leaves out."""

    outputs_dir: Path = Path("outputs")
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_new_tokens_limit: int = 1024
    max_prompt_chars: int = 16000
    max_concurrent: int = 2
    max_loaded_models: int = 2
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = 0.95
    max_tokens: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs_dir", Path(self.outputs_dir).expanduser())
        for key in ("max_new_tokens_limit", "max_prompt_chars", "max_concurrent"):
            _at_least(key, getattr(self, key), 1)
        _at_least("max_loaded_models", self.max_loaded_models, 1)
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an integer in 0..65535, got {self.port!r}.")
        if not self.host:
            raise ConfigError("host is empty; use host=127.0.0.1 (this machine only).")
        if not 1 <= self.max_tokens <= self.max_new_tokens_limit:
            raise ConfigError(
                f"sampling.max_tokens={self.max_tokens} must be between 1 and "
                f"max_new_tokens_limit={self.max_new_tokens_limit}."
            )
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"sampling.temperature must be >= 0, got {self.temperature}.")
        if self.top_k is not None and (
            not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0
        ):
            raise ConfigError(f"sampling.top_k must be >= 0 or null, got {self.top_k}.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling.top_p must be in (0, 1] or null, got {self.top_p}.")

    @classmethod
    def from_config(cls, cfg: Any) -> Settings:
        """From the composed conf/chat.yaml (a DictConfig or a plain dict)."""
        sampling = cfg["sampling"]
        try:
            temperature = float(sampling["temperature"])
            top_p = None if sampling["top_p"] is None else float(sampling["top_p"])
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"sampling.temperature and sampling.top_p must be numbers ({e})."
            ) from None
        return cls(
            outputs_dir=Path(str(cfg["outputs_dir"])),
            host=str(cfg["host"]),
            port=cfg["port"],
            device=str(cfg["device"]),
            max_new_tokens_limit=cfg["max_new_tokens_limit"],
            max_prompt_chars=cfg["max_prompt_chars"],
            max_concurrent=cfg["max_concurrent"],
            max_loaded_models=cfg["max_loaded_models"],
            temperature=temperature,
            top_k=sampling["top_k"],
            top_p=top_p,
            max_tokens=sampling["max_tokens"],
        )


def _at_least(key: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}.")


def is_local_host(host: str) -> bool:
    """True when binding to `host` only accepts connections from this machine."""
    if host.strip().lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, port: int) -> str | None:
    """The warning to log before serving on a non-local address (None for a local one): the
    server has no authentication, so anyone who can reach the address can use it."""
    if is_local_host(host):
        return None
    return (
        f"Serving on {host}:{port}, which other machines can reach: this server has NO "
        "authentication, so anyone who can connect can read your checkpoint list and run "
        "generations on this machine. Use host=127.0.0.1 unless that is what you want."
    )
