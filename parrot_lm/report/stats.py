"""Seed statistics: jobs that differ only in their seed form a group, summarised by mean,
standard deviation and a 95% t confidence interval of their final and best val loss, with
Welch's t-test of each group against the best one."""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parrot_lm.report.jobs import Job

SEED_KEY = "seed"
CONFIDENCE = 0.95
ALL_JOBS = "(all)"  # the group's name when the jobs differ in nothing but the seed


@dataclass
class Summary:
    """n values' mean, sample standard deviation (ddof=1) and 95% confidence interval; sd
    and the interval are None for fewer than two values, everything is None for none."""

    n: int = 0
    mean: float | None = None
    sd: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sd (ddof=1: the unbiased sample variance) and the t-based 95% CI
    mean ± t_{0.975, n-1} · sd / √n (Student's t interval for a mean with unknown variance;
    e.g. NIST/SEMATECH e-Handbook of Statistical Methods, §7.2.2.1)."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return Summary()
    data = np.asarray(values, dtype=float)
    mean = float(np.mean(data))
    if n < 2:  # one seed: no spread to estimate
        return Summary(n, mean)
    with np.errstate(invalid="ignore"):  # a diverged (inf) seed: sd is nan, and shown so
        sd = float(np.std(data, ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's unequal-variances t-test (Welch 1947, Biometrika 34:28;
    scipy.stats.ttest_ind with equal_var=False); None when either side has fewer than two
    values. nan (kept) when both sides have zero spread."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    with warnings.catch_warnings():  # zero variance on both sides: scipy warns and gives nan
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


@dataclass
class Group:
    """Jobs whose labels are equal once the seed is left out, and their statistics. p_final
    and p_best compare this group with the report's first (reference) group."""

    label: str
    jobs: list[Job] = field(default_factory=list)
    p_final: float | None = None
    p_best: float | None = None

    @property
    def finals(self) -> list[float]:
        return [j.final_val_loss for j in self.jobs if j.final_val_loss is not None]

    @property
    def bests(self) -> list[float]:
        return [b for b in (j.best[0] for j in self.jobs) if b is not None]

    @property
    def final(self) -> Summary:
        return summarise(self.finals)

    @property
    def best(self) -> Summary:
        return summarise(self.bests)

    @property
    def seeds(self) -> list[str]:
        return [j.label_parts.get(SEED_KEY, "") for j in self.jobs]


def group_label(job: Job) -> str:
    """The job's label without its seed: equal for jobs that differ only in the seed."""
    parts = [f"{k}={v}" for k, v in job.label_parts.items() if k != SEED_KEY]
    return " ".join(parts) if parts else ALL_JOBS


def group_jobs(jobs: Sequence[Job]) -> list[Group]:
    """The jobs (labelled by label_jobs) grouped by their label without the seed, lowest mean
    best val loss first (groups without one last, then in first-seen order), each group's
    Welch p-values against the first group: the best-looking setting is the reference, and
    every other group is asked whether it differs from it."""
    by_label: dict[str, Group] = {}
    for job in jobs:
        by_label.setdefault(group_label(job), Group(group_label(job))).jobs.append(job)
    order = list(by_label)
    groups = sorted(
        by_label.values(),
        key=lambda g: (g.best.mean is None, g.best.mean or 0.0, order.index(g.label)),
    )
    if groups:
        ref = groups[0]
        for group in groups[1:]:
            group.p_final = welch_p(ref.finals, group.finals)
            group.p_best = welch_p(ref.bests, group.bests)
    return groups


def has_seed_groups(groups: Sequence[Group]) -> bool:
    """Whether any group holds more than one job (else the per-job table says it all)."""
    return any(len(g.jobs) > 1 for g in groups)


def _fmt(value: float | int | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _pm(s: Summary) -> str:
    if s.mean is None:
        return ""
    return f"{s.mean:.4f}" if s.sd is None else f"{s.mean:.4f} ± {s.sd:.4f}"


def _ci(s: Summary) -> str:
    return "" if s.ci_low is None else f"[{s.ci_low:.4f}, {s.ci_high:.4f}]"


GROUP_MD_HEADER = [
    "group",
    "seeds",
    "n",
    "final val loss (mean ± sd)",
    "final 95% CI",
    "p final",
    "best val loss (mean ± sd)",
    "best 95% CI",
    "p best",
]


def render_groups_markdown(groups: Sequence[Group]) -> str:
    """The groups as a Markdown table (rounded for reading; "" where a value is undefined)."""

    def cells(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    rule = ["---", "---"] + ["---:"] * (len(GROUP_MD_HEADER) - 2)
    lines = [cells(GROUP_MD_HEADER), "| " + " | ".join(rule) + " |"]
    for g in groups:
        final, best = g.final, g.best
        row = [g.label, ",".join(s for s in g.seeds if s), str(final.n), _pm(final), _ci(final)]
        row += [_fmt(g.p_final, ".3g"), _pm(best), _ci(best), _fmt(g.p_best, ".3g")]
        lines.append(cells(row))
    return "\n".join(lines) + "\n"


GROUP_CSV_COLUMNS = ["group", "jobs", "seeds"] + [
    f"{metric}_{stat}"
    for metric in ("final_val_loss", "best_val_loss")
    for stat in ("n", "mean", "sd", "ci95_low", "ci95_high", "p_welch")
]


def render_groups_csv(groups: Sequence[Group]) -> str:
    """The groups as CSV with a header row (full precision; "" where undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=GROUP_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for g in groups:
        row: dict[str, Any] = {"group": g.label, "jobs": len(g.jobs), "seeds": " ".join(g.seeds)}
        for metric, s, p in (
            ("final_val_loss", g.final, g.p_final),
            ("best_val_loss", g.best, g.p_best),
        ):
            row[f"{metric}_n"] = s.n
            for stat, value in (
                ("mean", s.mean),
                ("sd", s.sd),
                ("ci95_low", s.ci_low),
                ("ci95_high", s.ci_high),
                ("p_welch", p),
            ):
                row[f"{metric}_{stat}"] = _fmt(value, ".6g")
        writer.writerow(row)
    return buffer.getvalue()
