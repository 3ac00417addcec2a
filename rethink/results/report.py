"""Tables, plots and a report from ``result.json`` files: ``python -m rethink.report PATH... [--out DIR]
[--metric best|final] [--alpha A] [--wandb] [--speed pruned_speed.json]``, and the summary printed after every sweep
(:class:`SweepSummary`, a Hydra callback).

:func:`write_report` writes, under one directory, every table as Markdown and CSV (``tables/``), the long-form
``cells.csv``, the plots (``plots/``), the verdicts (``verdicts.json``), the compute cost (``costs.csv``) and
``report.md`` with all of them; with ``--wandb`` also a W&B run; with ``--speed`` a "measured speedup" column from the
JSON of ``benchmarks/pruned_speed.py`` (:mod:`rethink.results.speed`). The tables are :mod:`rethink.results.tables`
(which results, grouped how) rendered by :mod:`rethink.results.render` (how cells, published numbers and footnotes
read); :mod:`rethink.results.verdicts` tests them, :mod:`rethink.results.costs` counts what they cost.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rethink.errors import UserError
from rethink.pruning.naming import slug
from rethink.results import costs, meta
from rethink.results.comparison import NAME as COMPARISON
from rethink.results.comparison import report_tables
from rethink.results.detection import detection_table
from rethink.results.files import collect
from rethink.results.published import METRIC
from rethink.results.render import LONG_FIELDS, render, table, to_csv, to_markdown
from rethink.results.speed import SpeedFile, add_speed_column
from rethink.results.speed import load as load_speed
from rethink.results.tables import METRIC_NAMES, METRICS
from rethink.results.verdicts import ALPHA, check_alpha, judge


def write_report(
    results: list[dict[str, Any]],
    problems: list[str],
    out: Path,
    sources: list[str],
    use_wandb: bool = False,
    metric: str = METRIC,
    alpha: float = ALPHA,
    speed: SpeedFile | None = None,
) -> dict[str, Any]:
    """Write the tables (Markdown + CSV), the long-form ``cells.csv``, the plots (with Figure 3's curves),
    ``verdicts.json`` (tests at level ``alpha``), ``costs.csv`` and ``report.md`` under ``out``; accuracies at
    ``metric`` (best | final epoch); ``speed`` adds the measured speedup column. Returns what was written (its
    ``markdown``: every table, as the CLI prints them)."""
    from rethink.results import curves, plots  # matplotlib only when a report is written

    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    tables = report_tables(results, metric)
    written: dict[str, Any] = {"tables": [], "plots": [], "report": None, "wandb": None}
    long_rows: list[dict[str, Any]] = []
    sections = []
    for t in tables:
        rendered = render(t)
        if speed is not None:
            rendered = add_speed_column(t, rendered, speed)
        stem = out / "tables" / slug(t.name)
        stem.with_suffix(".md").write_text(to_markdown(t, rendered))
        stem.with_suffix(".csv").write_text(to_csv(t, rendered))
        written["tables"].append(
            {
                "name": t.name,
                "title": t.title,
                "md": stem.with_suffix(".md"),
                "csv": stem.with_suffix(".csv"),
                "rendered": rendered,
            }
        )
        long_rows += rendered.long
        sections.append(to_markdown(t, rendered).rstrip())
    with open(out / "cells.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, LONG_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(long_rows)
    plot_dir = out / "plots"
    written["plots"] = plots.make_plots([t for t in tables if t.name != COMPARISON], plot_dir)
    written["plots"] += curves.figure3_plots([t for t in tables if t.name != COMPARISON], plot_dir)
    lines = [
        "# Rethinking the Value of Network Pruning — reproduction report",
        "",
        f"{len(results)} result(s) from {', '.join(sources)}. Cells: top-1 accuracy (%) at the "
        f"{METRIC_NAMES[metric]}, mean ± std (n seeds); `(n/N) [k]`: N seeds expected, footnote k names the missing "
        f"ones. (paper): the published number, a {METRIC_NAMES[METRIC]} accuracy as the reference code reports "
        "(rethink/results/published.json, from the authors' slides); Δ = ours - paper, shown only where the runs' "
        "settings are the paper's (a footnote names what differs otherwise).",
        "",
        meta.legend(results),
        "",
    ]
    for t, section in zip(tables, sections):
        lines += [section, ""]
        for title, path in written["plots"]:
            if path.name.startswith(f"widths_{slug(t.name)}_") or path.name.startswith(f"sparsity_{slug(t.name)}_"):
                lines += [f"![{title}]({path.relative_to(out).as_posix()})", ""]
    accuracy_plots = [(title, p) for title, p in written["plots"] if p.name.startswith("accuracy_params_")]
    if accuracy_plots:
        lines += ["## Accuracy vs parameters", ""]
        lines += [f"![{title}]({p.relative_to(out).as_posix()})\n" for title, p in accuracy_plots]
    detection = detection_table(results)
    written["markdown"] = "\n".join([*(section + "\n" for section in sections), detection]).rstrip()
    if detection:
        (out / "tables" / "detection.md").write_text(detection)
        lines += [detection]
    lines += curves.section(written["plots"], out)
    written["verdicts"] = judge(tables, results, metric, alpha)
    written["verdicts"].write(out / "verdicts.json")
    lines += [written["verdicts"].to_markdown()]
    costed = costs.cost_tables(tables)
    costs.write_csv(costed, out / "costs.csv")
    lines += [costs.to_markdown(costed)]
    if problems:
        lines += ["## Files not reported", ""] + [f"- {p}" for p in problems] + [""]
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    written["report"] = out / "report.md"
    if use_wandb:
        from rethink.results.wandb_upload import upload_wandb  # wandb only when asked for

        written["wandb"] = upload_wandb(written, out, problems)
    return written


class SweepSummary(Callback):
    """Hydra callback: after a multirun, print the table of the sweep's results."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results, problems = collect([sweep_dir])
        if results:
            title = f"Test top-1 accuracy (%), {METRIC_NAMES[METRIC]}, mean ± std (n seeds) — {sweep_dir}"
            print(f"\n{title}\n{table(results)}")
        for problem in problems:
            print(f"rethink.report: {problem}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """CLI: write the report of every result under the given paths; 0 when anything was written."""
    parser = argparse.ArgumentParser(prog="python -m rethink.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched for result.json) or result files")
    parser.add_argument("--out", default="report", help="output directory (default: ./report)")
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=METRIC,
        help="accuracy of the best epoch (default, as the paper reports) or of the final epoch",
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level of the verdicts (default 0.05)")
    parser.add_argument("--wandb", action="store_true", help="also log tables and plots to W&B (job_type=report)")
    parser.add_argument("--speed", help="JSON of benchmarks/pruned_speed.py: adds a measured speedup column")
    args = parser.parse_args(argv)
    try:
        check_alpha(args.alpha)
        speed = None if args.speed is None else load_speed(args.speed)
    except UserError as exc:
        print(f"rethink.report: {exc}", file=sys.stderr)
        return 2
    results, problems = collect(args.paths)
    for problem in problems:
        print(f"rethink.report: {problem}", file=sys.stderr)
    if not results:
        print("rethink.report: no readable result.json: nothing written", file=sys.stderr)
        return 1
    out = Path(args.out)
    written = write_report(results, problems, out, list(args.paths), args.wandb, args.metric, args.alpha, speed)
    print(written["markdown"])
    print(written["verdicts"].to_markdown())
    print(
        f"rethink.report: wrote {written['report']} "
        f"({len(written['tables'])} table(s), {len(written['plots'])} plot(s))",
        file=sys.stderr,
    )
    if written["wandb"]:
        print(f"rethink.report: W&B run in {written['wandb']}", file=sys.stderr)
    return 0
