"""Speed switches (`speed.*` in conf/train.yaml), applied to a built model before training.

Each changes how fast a step runs, never what it computes beyond float rounding, so none of
them is part of the model's identity: a run may be resumed with them flipped.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from parrot_lm.config.schema import MATMUL_PRECISIONS, SDPA_BACKENDS
from parrot_lm.core.errors import ConfigError
from parrot_lm.core.hardware import reuse_freed_memory
from parrot_lm.model import GPT

log = logging.getLogger(__name__)


def apply_speed_settings(speed: dict[str, Any], model: GPT, on_cuda: bool = False) -> None:
    """The allocator, matmul precision, SDPA kernels, activation checkpointing, then
    torch.compile in place.

    `reuse_freed_memory: null` keeps freed memory in the process when training on the CPU, where
    each step would otherwise page-fault its activations back in (core.hardware); on CUDA the
    host allocates little per step. `compile: null` compiles when training on CUDA, where it
    pays for its warm-up within a few hundred steps; on CPU the tiny models gain little and
    every start would wait for it.
    """
    reuse = speed.get("reuse_freed_memory")
    if reuse if reuse is not None else not on_cuda:
        reuse_freed_memory()  # process-wide, once
    precision = speed.get("matmul_precision", "high")
    if precision not in MATMUL_PRECISIONS:
        raise ConfigError(
            f"speed.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}; "
            f"got {precision!r}."
        )
    torch.set_float32_matmul_precision(precision)  # "high": TF32 matmuls on Ampere+ GPUs

    backend = speed.get("sdpa_backend", "auto")
    if backend not in SDPA_BACKENDS:
        raise ConfigError(
            f"speed.sdpa_backend must be one of {', '.join(SDPA_BACKENDS)}; got {backend!r}."
        )
    if backend != "auto":  # only the chosen kernel may run (an error if it cannot)
        for name in SDPA_BACKENDS[1:]:
            getattr(torch.backends.cuda, f"enable_{name}_sdp")(name == backend)

    model.activation_checkpointing = bool(speed.get("activation_checkpointing", False))

    compile_model = speed.get("compile")
    if compile_model if compile_model is not None else on_cuda:
        # Module.compile works in place: parameter names (and checkpoint keys) stay as they are.
        mode, backend = speed.get("compile_mode") or None, speed.get("compile_backend", "inductor")
        model.compile(mode=mode, backend=backend)
        log.info("torch.compile enabled (backend %s, mode %s)", backend, mode or "default")
