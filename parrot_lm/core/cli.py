"""Entry-point plumbing: bad input becomes one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

from parrot_lm.core.errors import ConfigError, ParrotError
from parrot_lm.core.io import storage_error

T = TypeVar("T")
# The Hydra config tree, shipped inside the package (the repo's conf/ links here), so the
# console commands of an installed ParrotLM find it wherever they run.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
log = logging.getLogger("parrot_lm")


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn ParrotError (and a non-finite loss) into `error: <sentence>` and exit code 2.

    An OSError that no stage worded (a disk, a permission, a path of the machine's) becomes
    the same kind of sentence, naming its path (core/io.py storage_error).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (ParrotError, FloatingPointError) as e:
            log.debug("user error", exc_info=True)
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except OSError as e:
            log.debug("unworded OSError", exc_info=True)
            error = storage_error(e.filename or "a file", e, "use")
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper


def compose_config(
    config_dir: str, name: str, overrides: list[str], return_hydra_config: bool = False
):
    """Hydra's compose API for scripts that read the conf tree but make no run dir; a bad or
    mistyped override becomes a ConfigError sentence instead of a traceback.
    return_hydra_config: keep the `hydra` node (the sweeper's settings, for one)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            try:
                return compose(name, overrides=overrides, return_hydra_config=return_hydra_config)
            except (HydraException, OmegaConfBaseException) as e:
                groups = {p.name for p in Path(config_dir).iterdir() if p.is_dir()}
                defaults = functools.partial(compose, name, overrides=[])
                sentence = override_sentence(str(e), defaults, groups, overrides)
                if sentence is None:
                    raise
                raise ConfigError(sentence) from e
    except (HydraException, OmegaConfBaseException) as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        why = [line for line in lines[1:] if line.startswith("Key ")]  # "Key 'x' is not in struct"
        raise ConfigError(" ".join(lines[:1] + why[:1]) or type(e).__name__) from e


def override_sentence(
    message: str,
    defaults: Callable[[], Any],
    groups: Collection[str] = (),
    overrides: Collection[str] = (),
) -> str | None:
    """Hydra's refusal of a mistyped key or an unknown group option, as one sentence with the
    closest valid names (difflib), or None for any other refusal. `defaults()` composes the
    config without overrides, for the keys there are; `groups`: the config groups, so that a
    mistyped group (`modle=tiny`) is answered with the group (`model=tiny`); `overrides`: the
    command line's, for the value to repeat."""
    import difflib

    from omegaconf import OmegaConf

    unknown_key = re.search(r"Could not override '([^']+)'", message)
    if unknown_key:
        key = unknown_key.group(1)
        keys = list(_dotted_keys(OmegaConf.to_container(defaults(), resolve=False)))
        close = difflib.get_close_matches(key, keys, n=2, cutoff=0.8)
        leaf = key.rsplit(".", 1)[-1]  # `lr=1e-3` for optim.lr: the last part matches
        close += [k for k in keys if k.rsplit(".", 1)[-1] == leaf and k not in close][:2]
        value = next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")), "...")
        group = next((k for k in close if k in groups), None)
        if group is not None:  # a mistyped group: adding a key would not be what was meant
            return f"{key} is not a config key or group (did you mean {group}={value}?)."
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"{key} is not a config key{hint}; add a new key with +{key}=..."
    unknown_option = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if unknown_option:
        group, option = unknown_option.groups()
        listed = message.split("Available options in", 1)[-1].split("Config search path", 1)[0]
        options = [line.strip() for line in listed.splitlines()[1:] if line.strip()]
        close = difflib.get_close_matches(option, options, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{group}={option} is not an option of {group}{hint}; choose one of " + (
            f"{', '.join(options)}." if options else "the files in conf/" + group + "."
        )
    return None


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key of a nested dict as `a.b.c`, parents included."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            yield path
            yield from _dotted_keys(value, path + ".")


def ckpt_alias(argv: list[str]) -> list[str]:
    """The scripts' argv with `ckpt_path=` (training's name for "which checkpoint") read as
    their `ckpt=`, so the one key train.py takes works for every script too."""
    return [f"ckpt={a.split('=', 1)[1]}" if a.startswith("ckpt_path=") else a for a in argv]


def require(cfg, *keys: str) -> None:
    """Fail with a sentence when a mandatory (`???`) config value was not given."""
    from omegaconf import OmegaConf

    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"Set {key}=... on the command line (it has no default).")
