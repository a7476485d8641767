"""`make bench` and `make bench-gpu`: measured ratios (not installed with the package)."""

import statistics
import time
from collections.abc import Callable


def markdown_table(rows: list[tuple[str, str]]) -> str:
    """The `| measurement | value |` markdown table both benches print and write."""
    return "| measurement | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def alternate(
    steps_of: dict[str, Callable[[], None]], tokens_per_step: int, pairs: int, steps: int
) -> dict[str, list[float]]:
    """Tokens/s of each of two or more step functions, round by round: each round (a "pair")
    times a block of `steps` steps of each in turn (the order reversed every round), at the
    block's median step time, so a drift in machine speed hits them alike. Returns name ->
    one rate per round."""
    names = list(steps_of)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for pair in range(pairs):
        for name in names if pair % 2 == 0 else names[::-1]:
            seconds = []
            for _ in range(steps):
                start = time.perf_counter()
                steps_of[name]()
                seconds.append(time.perf_counter() - start)
            rates[name].append(tokens_per_step / statistics.median(seconds))
    return rates
