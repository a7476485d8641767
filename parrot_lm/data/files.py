"""Reading ParrotLM's own data files (meta.json, tokenizer files): a file that cannot be read or
parsed becomes one sentence naming it, the line where there is one, and what to do."""

from __future__ import annotations

import json
import os
from typing import Any

from parrot_lm.core.errors import DataError
from parrot_lm.core.io import storage_error


def read_text(path: str | os.PathLike, todo: str) -> str:
    """The UTF-8 text of `path`; DataError (not UTF-8) or StorageError (unreadable) otherwise,
    each ending with `todo` (what the user should do, e.g. "re-run data preparation")."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise DataError(f"{path} line {line} is not UTF-8 text ({e.reason}); {todo}.") from e
    except OSError as e:
        raise storage_error(path, e, "read") from e


def read_json(path: str | os.PathLike, todo: str) -> Any:
    """The JSON value in `path`, or one DataError sentence naming the file and the line."""
    try:
        return json.loads(read_text(path, todo))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {todo}."
        ) from e
