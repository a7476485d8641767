"""Entry-point plumbing: bad input becomes one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from parrot_lm.errors import ParrotError

T = TypeVar("T")
log = logging.getLogger("parrot_lm")


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn ParrotError (and a non-finite loss) into `error: <sentence>` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (ParrotError, FloatingPointError) as e:
            log.debug("user error", exc_info=True)
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper
