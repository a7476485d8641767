"""Range checks declared next to the values they check: `checked(default, integer(ge=1))`.

A schema dataclass (config/schema.py) gives each bounded field a `Check` in its metadata;
`check_fields` walks a merged config against it and turns the first value out of range into
one sentence: "<key> must be <range>, got <value>.". None always passes: the schema's types
say where null is allowed. A stage below the config (data preparation) declares its bounds
here too, and the schema reuses them, so each bound is written once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import ConfigError


class Check:
    """What a field's value must be: `allows(value)`, and `describe()` for the sentence
    "<key> must be <describe()>, got <value>."; None always passes (the schema's types say
    where null is allowed)."""

    def allows(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def show(value: Any) -> str:
    """A number as a user types it (1, not 1.0 for a bound; 1e-08 stays)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


@dataclasses.dataclass(frozen=True)
class Number(Check):
    """An integer (`integer=True`) or finite number within optional bounds."""

    integer: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        what = "an integer" if self.integer else "a number"
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt)
        high = ("]", self.le) if self.le is not None else (")", self.lt)
        if low[1] is not None and high[1] is not None:
            return f"{what} in {low[0]}{show(low[1])}, {show(high[1])}{high[0]}"
        if low[1] is not None:
            return f"{what} {'>=' if low[0] == '[' else '>'} {show(low[1])}"
        if high[1] is not None:
            return f"{what} {'<=' if high[0] == ']' else '<'} {show(high[1])}"
        return f"a finite {what.split()[-1]}"


def integer(**bounds: float) -> Number:
    """`integer(ge=1)`: an integer >= 1 (bounds: ge, gt, le, lt)."""
    return Number(integer=True, **bounds)


def number(**bounds: float) -> Number:
    """`number(gt=0)`: a finite number > 0 (bounds: ge, gt, le, lt)."""
    return Number(integer=False, **bounds)


@dataclasses.dataclass(frozen=True)
class OneOf(Check):
    choices: tuple[Any, ...]

    def allows(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join("null" if c is None else str(c) for c in self.choices)


@dataclasses.dataclass(frozen=True)
class ListOf(Check):
    """A list of exactly `length` items, each allowed by `item`."""

    item: Number
    length: int

    def allows(self, value: Any) -> bool:
        return (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == self.length
            and all(self.item.allows(v) for v in value)
        )

    def describe(self) -> str:
        count = {2: "two", 3: "three"}.get(self.length, str(self.length))
        return f"a list of {count} {self.item.describe().replace('a number', 'numbers', 1)}"


def checked(default: Any = dataclasses.MISSING, check: Check | None = None, **kwargs: Any):
    """A dataclass field whose value `check` must allow (None passes: the type says whether
    the field may be null)."""
    return dataclasses.field(default=default, metadata={"check": check}, **kwargs)


def plain(value: Any) -> Any:
    """A config node as plain Python (resolved); any other value as it is."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_value(key: str, value: Any, check: Check) -> None:
    """ConfigError "<key> must be <range>, got <value>." unless `check` allows `value` (or it
    is None)."""
    value = plain(value)
    if value is not None and not check.allows(value):
        raise ConfigError(f"{key} must be {check.describe()}, got {show(value)}.")


def check_fields(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Every field of `schema` in `node` (recursively) passes the check declared next to it;
    the first that does not becomes "<key> must be <range>, got <value>."."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            check_fields(node[f.name], hints[f.name], key + ".")
            continue
        check = f.metadata.get("check")
        if check is None:
            continue
        check_value(key, node[f.name], check)
