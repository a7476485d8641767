"""Sweep report: `python scripts/report.py outputs/multiruns/<date>/<time> [more dirs] [--out DIR]`.

One row per run (final and best val loss, steps, tokens, wall time, tokens/s, status), sorted
by best val loss, in report.md and report.csv, and val/loss per run in val_loss.png; written
into the first dir (or --out) and the table printed. Globs compare several sweeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parrot_lm.core.cli import exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv: list[str]) -> int:
    from parrot_lm.report.sweep import main as report_main

    return report_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
