"""The battery's results as a Markdown table and a JSON document: every case, then the totals
(tried / good / bad / skipped), per kind and per entry point, and the controls apart."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable

from tools.battery.harness import BAD, GOOD, OK, SKIPPED, Result

VERDICTS = (GOOD, BAD, SKIPPED)


def totals(results: Iterable[Result]) -> dict[str, int]:
    """tried (GOOD + BAD), good, bad, skipped of the bad-input cases."""
    counts = Counter(r.verdict for r in results)
    return {
        "tried": counts[GOOD] + counts[BAD],
        "good": counts[GOOD],
        "bad": counts[BAD],
        "skipped": counts[SKIPPED],
    }


def grouped(results: list[Result], key: str) -> dict[str, dict[str, int]]:
    """`totals` per value of the result attribute `key` (kind or entry)."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(getattr(r, key), []).append(r)
    return {name: totals(rs) for name, rs in sorted(groups.items())}


def summary(results: list[Result]) -> dict:
    """The JSON document: totals, per kind, per entry point, the controls and every case."""
    cases = [r for r in results if not r.control]
    controls = [r for r in results if r.control]
    return {
        "totals": totals(cases),
        "per_kind": grouped(cases, "kind"),
        "per_entry_point": grouped(cases, "entry"),
        "controls": {
            "run": len(controls),
            "ok": sum(r.verdict == OK for r in controls),
            "failed": sum(r.verdict != OK for r in controls),
        },
        "cases": [dataclasses.asdict(r) for r in cases],
        "control_cases": [dataclasses.asdict(r) for r in controls],
    }


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _totals_rows(groups: dict[str, dict[str, int]]) -> list[list[object]]:
    return [[name, t["tried"], t["good"], t["bad"], t["skipped"]] for name, t in groups.items()]


def markdown(results: list[Result], command: str) -> str:
    """The whole report: totals first, then the BAD cases with their reasons, every case, the
    controls."""
    doc = summary(results)
    cases = [r for r in results if not r.control]
    t = doc["totals"]
    c = doc["controls"]
    out = [
        "# ParrotLM bad-input battery",
        "",
        f"Reproduce: `{command}`",
        "",
        f"**Totals: tried {t['tried']} / good {t['good']} / bad {t['bad']} "
        f"(skipped {t['skipped']})**; controls (valid commands that must succeed): "
        f"{c['ok']} of {c['run']} ok.",
        "",
        "GOOD: non-zero exit, no traceback, stderr ends in one `error: <sentence>`, and the "
        "case's files unchanged with nothing added. BAD says which of these failed.",
        "",
        "## Per kind",
        "",
        *_table(["kind", "tried", "good", "bad", "skipped"], _totals_rows(doc["per_kind"])),
        "",
        "## Per entry point",
        "",
        *_table(["entry", "tried", "good", "bad", "skipped"], _totals_rows(doc["per_entry_point"])),
        "",
        "## BAD cases",
        "",
        *_table(
            ["case", "kind", "exit", "reason"],
            [[r.name, r.kind, r.returncode, r.reason] for r in cases if r.verdict == BAD],
        ),
        "",
        "## Every case",
        "",
        *_table(
            ["case", "kind", "command", "exit", "verdict", "reason / error line"],
            [
                [
                    r.name,
                    r.kind,
                    f"`{r.command}`",
                    r.returncode,
                    r.verdict,
                    r.reason or r.error_line,
                ]  # fmt: skip
                for r in cases
            ],
        ),
        "",
        "## Controls",
        "",
        *_table(
            ["case", "command", "exit", "verdict", "reason"],
            [
                [r.name, f"`{r.command}`", r.returncode, r.verdict, r.reason]
                for r in results
                if r.control
            ],  # fmt: skip
        ),
        "",
    ]
    return "\n".join(out)


def as_json(results: list[Result], command: str) -> str:
    """`summary` with the command that reproduces it, as indented JSON."""
    return json.dumps({"command": command, **summary(results)}, indent=2) + "\n"
