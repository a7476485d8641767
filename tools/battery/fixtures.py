"""The fixtures every case copies, built once per battery in a scratch dir: a prepared corpus
and a real (tiny, 4-step) run made by train.py, a small text corpus, and a dir that is not a
run."""

from __future__ import annotations

import json
from pathlib import Path

from tools.battery.commands import FIXTURE_TRAIN
from tools.battery.harness import Context

WORDS = "fox dog cat bird tree river hill park ball kite boat star moon sun rain".split()


def corpus_lines(n: int = 200) -> list[str]:
    """`n` short, distinct, deterministic English-like documents."""
    lines = []
    for i in range(n):
        a, b, c = WORDS[i % 15], WORDS[(i * 7) % 15], WORDS[(i * 11 + 3) % 15]
        lines.append(f"Story {i}: once upon a time a {a} saw a {b} near the {c}, and they played.")
    return lines


def build_fixtures(root: Path) -> Path:
    """Make `root/fixtures` (data/stories, runs/base, corpus/, notarun/) and return it; raises
    RuntimeError, naming the command, if the training that makes the run fails."""
    fixtures = root / "fixtures"
    (fixtures / "corpus" / "emptydir").mkdir(parents=True)
    lines = corpus_lines()
    (fixtures / "corpus" / "good.jsonl").write_text(
        "".join(json.dumps({"text": line}) + "\n" for line in lines), encoding="utf-8"
    )
    (fixtures / "corpus" / "good.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (fixtures / "notarun").mkdir()
    (fixtures / "notarun" / "notes.txt").write_text("Just some notes, not a run.\n")
    Context(fixtures).run("train.py", *FIXTURE_TRAIN, timeout=600)
    for needed in ("data/stories/meta.json", "runs/base/checkpoints/last.ckpt"):
        if not (fixtures / needed).is_file():
            raise RuntimeError(f"the fixture run did not leave {needed}")
    return fixtures
