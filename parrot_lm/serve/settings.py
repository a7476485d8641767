"""The chat server's settings (conf/chat.yaml), checked where they are born."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import ConfigError, SamplingError
from parrot_lm.core.hardware import pick_device
from parrot_lm.generation.params import SamplingParams

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


# The sampling defaults of conf/chat.yaml, for fields a request leaves out.
DEFAULT_SAMPLING = SamplingParams(max_new_tokens=128, temperature=0.8, top_p=0.95)


@dataclass(frozen=True)
class Settings:
    """What the server may do: where checkpoints are, how much one request and all requests
    together may cost, and the sampling defaults for fields a request leaves out (`sampling`,
    already range-checked as a SamplingParams; its max_new_tokens is the default max_tokens)."""

    outputs_dir: Path = Path("outputs")
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_new_tokens_limit: int = 1024
    max_prompt_chars: int = 16000
    max_concurrent: int = 2
    max_loaded_models: int = 2
    sampling: SamplingParams = DEFAULT_SAMPLING

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs_dir", Path(self.outputs_dir).expanduser())
        for key in ("max_new_tokens_limit", "max_prompt_chars", "max_concurrent"):
            _at_least(key, getattr(self, key), 1)
        _at_least("max_loaded_models", self.max_loaded_models, 1)
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an integer in 0..65535, got {self.port!r}.")
        if not self.host:
            raise ConfigError("host is empty; use host=127.0.0.1 (this machine only).")
        if self.sampling.max_new_tokens > self.max_new_tokens_limit:
            raise ConfigError(
                f"sampling.max_tokens={self.sampling.max_new_tokens} must be between 1 and "
                f"max_new_tokens_limit={self.max_new_tokens_limit}."
            )

    @classmethod
    def from_config(cls, cfg: Any) -> Settings:
        """From the composed conf/chat.yaml (a DictConfig or a plain dict)."""
        sampling = cfg["sampling"]
        max_tokens = sampling["max_tokens"]
        _at_least("sampling.max_tokens", max_tokens, 1)
        try:
            defaults = SamplingParams(
                max_new_tokens=max_tokens,
                temperature=sampling["temperature"],
                top_k=sampling["top_k"],
                top_p=sampling["top_p"],
            )
        except SamplingError as e:  # "top_p must be ..." -> "sampling.top_p must be ..."
            raise ConfigError(f"sampling.{e}") from None
        pick_device(str(cfg["device"]))  # a device this machine lacks fails at start
        return cls(
            outputs_dir=Path(str(cfg["outputs_dir"])),
            host=str(cfg["host"]),
            port=cfg["port"],
            device=str(cfg["device"]),
            max_new_tokens_limit=cfg["max_new_tokens_limit"],
            max_prompt_chars=cfg["max_prompt_chars"],
            max_concurrent=cfg["max_concurrent"],
            max_loaded_models=cfg["max_loaded_models"],
            sampling=defaults,
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
