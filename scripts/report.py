"""Sweep report: `python scripts/report.py outputs/multiruns/<date>/<time> [more dirs] [--out DIR]`.

One row per run (final and best val loss, steps, tokens, wall time, tokens/s, status), sorted
by best val loss, in report.md and report.csv, and val/loss per run in val_loss.png; written
into the dir when there is one (a sweep or a run: its own report), into --out when there are
several (refused without it), and the table printed. A report only replaces a report of the
same dirs. Jobs differing only in `seed` are grouped (mean, sd, 95% CI, Welch p;
report_groups.csv, and mean ± sd bands in the plot). Globs compare several sweeps.
The same command is installed as `parrot-report` (parrot_lm.report.cli:main).
"""

from parrot_lm.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
