"""Sweep report: `python scripts/report.py outputs/multiruns/<date>/<time> [more dirs] [--out DIR]`.

One row per run (final and best val loss, steps, tokens, wall time, tokens/s, status), sorted
by best val loss, in report.md and report.csv, and val/loss per run in val_loss.png; written
into the first dir (or --out) and the table printed. Globs compare several sweeps.
The same command is installed as `parrot-report` (parrot_lm.report.cli:main).
"""

from parrot_lm.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
