"""Verdicts: is training from scratch better than fine-tuning, cell by cell, and automatic pruning better than uniform
at matched parameters (the paper's Figure 3)? Each comparison is Welch's t-test (two-sided, unequal variances) of the
per-seed top-1 accuracies at the report's metric, at a stated α: "better" / "worse" (the first named against the
second) when p < α, else "no significant difference"; a side with fewer than 2 seeds is not tested ("needs ≥2
seeds"). Each table gets a one-line summary per comparison, beside the paper's own claim for it (``claims`` in
``published.json``). Written into ``report.md``, printed by ``python -m rethink.report`` and kept as
``verdicts.json``."""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import ttest_ind

from rethink.errors import UserError
from rethink.pruning import lookup
from rethink.results import meta, published
from rethink.results.files import top1
from rethink.results.identity import freeze
from rethink.results.tables import (
    METRIC_NAMES,
    Table,
    _natural,
    column_title,
    model_options,
)

ALPHA = 0.05
BETTER, SAME, WORSE, UNTESTED = "better", "no significant difference", "worse", "needs ≥2 seeds"
FIGURE3 = "figure3"
FIGURE3_TITLE = "Figure 3: automatic and guided vs uniform pruning at matched parameters (trained from scratch)"
HEADER = ("dataset", "model", "pruned", "A vs B", "A: mean ± std (n)", "B: mean ± std (n)", "Δ (A − B)", "p")
HEADER += ("verdict (A)",)  # the Markdown table of the comparisons
AGAINST_UNIFORM = ("automatic", "guided", "transferred guided")  # curve roles compared with the uniform one


def check_alpha(alpha: float) -> float:
    """``alpha`` when it is a significance level (0 < α < 1); otherwise a :class:`UserError`."""
    if not 0 < alpha < 1:
        raise UserError(f"--alpha={alpha} is not a significance level; give a number between 0 and 1, e.g. 0.05.")
    return alpha


@dataclass
class Comparison:
    """Sample ``a`` (per-seed accuracies) against sample ``b`` of one cell, and the verdict on ``a``."""

    table: str
    dataset: str
    model: str
    setting: str
    a: str
    b: str
    a_values: list[float]
    b_values: list[float]
    alpha: float
    p_value: float | None = field(init=False, default=None)
    verdict: str = field(init=False, default=UNTESTED)

    def __post_init__(self) -> None:
        if min(len(self.a_values), len(self.b_values)) < 2:
            return
        with warnings.catch_warnings():  # (nearly) constant samples: scipy warns of precision loss; p stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_ind(self.a_values, self.b_values, equal_var=False).pvalue)
        if math.isnan(p):  # both samples constant and equal: nothing tells them apart
            self.verdict = SAME
            return
        self.p_value = p
        self.verdict = SAME if p >= self.alpha else BETTER if self.difference > 0 else WORSE

    @property
    def difference(self) -> float:
        return statistics.mean(self.a_values) - statistics.mean(self.b_values)

    @property
    def where(self) -> str:
        return f"{self.dataset} {self.model} {self.setting}"

    def to_dict(self) -> dict[str, Any]:
        def std(values: list[float]) -> float | None:
            return statistics.stdev(values) if len(values) > 1 else None

        a, b = self.a_values, self.b_values
        return {
            "table": self.table,
            "dataset": self.dataset,
            "model": self.model,
            "setting": self.setting,
            "a": self.a,
            "b": self.b,
            "mean_a": statistics.mean(a),
            "mean_b": statistics.mean(b),
            "std_a": std(a),
            "std_b": std(b),
            "n_a": len(a),
            "n_b": len(b),
            "difference": self.difference,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "verdict": self.verdict,
        }


def _sample(values: list[float]) -> str:
    """``93.10 ± 0.14 (3)``, as the tables show a cell."""
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{std} ({len(values)})"


def table_comparisons(table: Table, alpha: float) -> list[Comparison]:
    """Each schedule training from scratch (Scratch-B, then Scratch-E: the later column first) against each
    fine-tuned one, in every row of ``table`` where both cells have accuracies; the schedules' roles say which is
    which (:mod:`rethink.results.meta`)."""
    finetuned = meta.with_role("finetuned", table.columns)
    scratch = meta.with_role("scratch", table.columns)
    out = []
    for row in table.rows:
        for s in scratch:
            for f in finetuned:
                a, b = row.cells.get(s), row.cells.get(f)
                if a is None or b is None or not a.values or not b.values:
                    continue
                a_values, b_values = list(a.values.values()), list(b.values.values())
                what = (table.name, row.dataset, row.model_text, row.label, column_title(s), column_title(f))
                out.append(Comparison(*what, a_values, b_values, alpha))
    return out


def figure3_comparisons(results: list[dict[str, Any]], metric: str, alpha: float) -> list[Comparison]:
    """Automatic (also guided, transferred guided) against uniform: results of the same dataset, model, schedule and
    Figure 3 curve point (kind, level, matched) of the pruners' :meth:`~rethink.pruning.Pruner.curve`, so a guided
    decision is compared with the uniform control of its own params; the first result of a seed counts. Results on
    no curve, or at no level, are not paired."""
    points: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        if "accuracy" not in r:  # a detection result: its own table
            continue
        cls, requested = lookup(r["cell"]["pruner"]), (r.get("pruning") or {}).get("requested")
        curve = cls.curve(requested) if cls is not None and isinstance(requested, dict) else None
        value, _ = top1(r["accuracy"], metric)
        if curve is None or curve.level is None or value is None:
            continue
        cell = r["cell"]
        level = round(float(curve.level), 6)  # a ratio written two ways (0.7, 0.7000001) is one level
        where = (cell["dataset"], cell["model"], freeze(model_options(r)), cell["schedule"])
        points[(*where, curve.kind, level, curve.matched)][curve.role].setdefault(cell["seed"], value)
    out = []
    for key in sorted(points, key=lambda k: (meta.dataset_order(k[0]), k[0], _natural(k[1]), k[2:])):
        dataset, model, _, schedule, kind, level, _ = key
        uniform = points[key].get("uniform")
        for role in AGAINST_UNIFORM:
            if uniform and points[key].get(role):
                setting = f"{kind} {100 * level:g}%, {column_title(schedule)}"
                a, b = list(points[key][role].values()), list(uniform.values())
                out.append(Comparison(FIGURE3, dataset, model, setting, role, "uniform", a, b, alpha))
    return out


def summary(comparisons: list[Comparison]) -> str:
    """``Scratch-B ≥ Fine-tuned in 9 of 11 cells (2 significantly worse: ...)`` for comparisons of one (a, b)."""
    first = comparisons[0]
    tested = [c for c in comparisons if c.verdict != UNTESTED]
    untested = len(comparisons) - len(tested)
    needs = f"{untested} cell{'s' * (untested > 1)} {'need' if untested > 1 else 'needs'} ≥2 seeds"
    if not tested:
        return f"{first.a} vs {first.b}: not tested ({needs})"
    better = sum(c.verdict == BETTER for c in tested)
    worse = [c.where for c in tested if c.verdict == WORSE]
    details = [f"{better} significantly better"] if better else []
    details += [f"{len(worse)} significantly worse: {', '.join(worse)}"] if worse else []
    text = f"{first.a} ≥ {first.b} in {len(tested) - len(worse)} of {len(tested)} cells"
    return text + (f" ({'; '.join(details)})" if details else "") + (f"; {needs}" if untested else "")


@dataclass
class Verdicts:
    """Every comparison of a report, its tables' summaries and the paper's claims."""

    alpha: float
    metric: str
    comparisons: list[Comparison]
    titles: dict[str, str]  # table name -> title, in report order

    def groups(self) -> dict[str, dict[tuple[str, str], list[Comparison]]]:
        """The comparisons by table (report order) and by (a, b)."""
        out: dict[str, dict[tuple[str, str], list[Comparison]]] = {name: {} for name in self.titles}
        for c in self.comparisons:
            out[c.table].setdefault((c.a, c.b), []).append(c)
        return {name: group for name, group in out.items() if group}

    def summaries(self) -> list[dict[str, Any]]:
        claims = published.load().get("claims", {})
        return [
            {
                "table": name,
                "title": self.titles[name],
                "a": a,
                "b": b,
                "text": summary(group),
                "claim": claims.get(name),
            }
            for name, groups in self.groups().items()
            for (a, b), group in groups.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": "Welch's t-test, two-sided (scipy.stats.ttest_ind, equal_var=False)",
            "alpha": self.alpha,
            "metric": self.metric,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "summaries": self.summaries(),
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")

    def to_markdown(self) -> str:
        """The Verdicts section: how verdicts are reached, then per table its summaries, the paper's claim and every
        comparison."""
        lines = [
            "## Verdicts",
            "",
            f"Welch's t-test (two-sided, unequal variances) of the per-seed top-1 accuracies at the "
            f"{METRIC_NAMES[self.metric]}, α = {self.alpha:g}: *better* / *worse* (the first named against the second) "
            "when p < α, else *no significant difference*; a cell with fewer than 2 seeds on either side is not tested "
            f"(*{UNTESTED}*). ≥: better or no significant difference. Machine-readable: verdicts.json.",
            "",
        ]
        if not self.comparisons:
            return "\n".join(lines + ["No cell has both sides of a comparison (fine-tuned and from scratch, or "
                                      "automatic and uniform at one level).", ""])  # fmt: skip
        claims = published.load().get("claims", {})
        for name, groups in self.groups().items():
            lines += [f"### {self.titles[name]}", ""]
            lines += [f"- {summary(group)}" for group in groups.values()]
            if claims.get(name):
                lines.append(f"- Paper ({claims[name]['source']}): {claims[name]['claim']}")
            lines += ["", "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
            for c in (c for group in groups.values() for c in group):
                p = "" if c.p_value is None else f"{c.p_value:.3g}"
                cells = [c.dataset, c.model, c.setting, f"{c.a} vs {c.b}", _sample(c.a_values), _sample(c.b_values)]
                cells += [f"{round(c.difference, 2) + 0.0:+.2f}", p, c.verdict]  # + 0.0: no "-0.00"
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        return "\n".join(lines)


def judge(tables: list[Table], results: list[dict[str, Any]], metric: str, alpha: float = ALPHA) -> Verdicts:
    """The verdicts of a report: Scratch-B/E against Fine-tuned in each table, then Figure 3's pairs."""
    comparisons = [c for t in tables for c in table_comparisons(t, alpha)]
    comparisons += figure3_comparisons(results, metric, alpha)
    titles = {t.name: t.title for t in tables} | {FIGURE3: FIGURE3_TITLE}
    return Verdicts(alpha, metric, comparisons, titles)
