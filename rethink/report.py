"""Tables, plots and a report from ``result.json`` files: ``python -m rethink.report PATH... [--out DIR] [--wandb]``,
and the summary printed after every sweep (:class:`SweepSummary`, a Hydra callback).

One table per pruner (the paper's tables: L1-norm, Network Slimming, SSS, weight pruning, ... and one of unpruned
models). Rows are (dataset, model, pruned model: variant or ratio); columns are Unpruned (the normally trained large
model: the ``pretrain`` stage of the row's runs, else ``schedule=baseline`` runs of the same model), Sparsity-trained
(the pretrain stage of slimming and SSS, trained with their penalty, so never Unpruned) and one per retraining
schedule. Each cell is ``mean ± std (n)`` of the final top-1 accuracy over seeds (std: sample standard
deviation, n-1). A cell with fewer seeds than its row (or than the table's usual count) reads ``mean ± std (n/N) [k]``
with footnote ``k`` naming the missing seeds: incomplete cells are marked, never averaged silently. Beside every
schedule with a published number (``rethink/published.json``, from the authors' slides): the paper's value and the
difference ours - paper. The row's pruned params % and FLOPs % are the runs' ``pruning.achieved`` fractions.

Files that are unreadable, partial (required keys missing), failed or foreign (not a rethink result) are listed in
the report and on stderr; the rest is still reported.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rethink import published
from rethink.naming import pruned_setting, setting_label, slug

SCHEDULE_ORDER = ("baseline", "finetune", "scratch_e", "scratch_b", "finetune_restart", "lottery", "lr_rewind")
COLUMN_NAMES = {
    "unpruned": "Unpruned",
    "sparsity_trained": "Sparsity-trained",
    "finetune": "Fine-tuned",
    "scratch_e": "Scratch-E",
    "scratch_b": "Scratch-B",
    "finetune_restart": "Fine-tune-restart",
    "lottery": "Lottery",
    "lr_rewind": "LR-rewind",
}
TABLE_ORDER = ("l1", "random", "slimming", "uniform", "sss", "magnitude")
TABLE_TITLES = {
    "l1": "L1-norm filter pruning (Li et al., 2017)",
    "random": "Random channel pruning (control)",
    "slimming": "Network Slimming (Liu et al., 2017)",
    "uniform": "Uniform channel pruning (control of Figure 3)",
    "sss": "Sparse Structure Selection (Huang & Wang, 2018)",
    "magnitude": "Non-structured weight pruning (Han et al., 2015)",
    "unpruned": "Unpruned models",
}
UNPRUNED_TABLE = "unpruned"
REQUIRED = (
    ("cell", "dataset"),
    ("cell", "model"),
    ("cell", "pruner"),
    ("cell", "schedule"),
    ("cell", "seed"),
    ("accuracy", "top1_final"),
)
DATASET_ORDER = {"cifar10": 0, "cifar100": 1, "imagenet": 2}


# ------------------------------------------------------------------------------------------------------- reading


def check(result: Any) -> str | None:
    """Why ``result`` cannot be reported (foreign / partial / failed), or None when it can."""
    if not isinstance(result, dict):
        return f"foreign: a JSON {type(result).__name__}, not a result object"
    if not isinstance(result.get("cell"), dict) and not isinstance(result.get("accuracy"), dict):
        return "foreign: not a rethink result.json (no 'cell' or 'accuracy' keys)"
    missing = [
        ".".join(path)
        for path in REQUIRED
        if not isinstance(result.get(path[0]), dict) or path[1] not in result[path[0]]
    ]
    if missing:
        return "partial: missing " + ", ".join(missing)
    failed = [
        str(s.get("stage", "?"))
        for s in result.get("stages") or []
        if isinstance(s, dict) and s.get("status") == "failed"
    ]
    if failed or result.get("status") == "failed":
        return "failed: stage " + ", ".join(failed or ["run"]) + " failed"
    top1 = result["accuracy"]["top1_final"]
    if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not math.isfinite(top1):
        return f"failed: accuracy.top1_final is {top1!r}, not a finite number"
    if not isinstance(result["cell"]["seed"], int):
        return f"partial: cell.seed is {result['cell']['seed']!r}, not an integer"
    return None


def collect(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every reportable ``result.json`` under ``paths`` (a file given directly may have any name), and a note for
    each one that is unreadable, partial, failed or foreign. Each result gets its file under the key ``_file``."""
    results, problems = [], []
    for root in map(Path, paths):
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        files = [root] if root.is_file() else sorted(root.rglob("result.json"))
        if not files:
            problems.append(f"{root}: no result.json found")
        for file in files:
            try:
                result = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                problems.append(f"{file}: unreadable ({type(exc).__name__}: {exc})")
                continue
            reason = check(result)
            if reason:
                problems.append(f"{file}: {reason}")
                continue
            result["_file"] = str(file)
            results.append(result)
    return results, problems


# ------------------------------------------------------------------------------------------------ row identity


def model_options(result: dict[str, Any]) -> dict[str, Any]:
    """The run's model config without its name (e.g. ``head``, ``width_multiplier``); {} when not recorded."""
    model = (result.get("config") or {}).get("model") or {}
    return {k: v for k, v in model.items() if k != "name"}


def _freeze(mapping: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in mapping.items()))


# ------------------------------------------------------------------------------------------------------ tables


@dataclass
class Cell:
    """The per-seed final top-1 accuracies of one (row, column)."""

    values: dict[int, float] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.mean(self.values.values())

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else None


@dataclass
class Row:
    """One row: a (dataset, model, pruned setting) of one table, its cells by column, the runs' pruned fractions."""

    table: str
    dataset: str
    model: str
    options: dict[str, Any]
    setting: dict[str, Any]
    cells: dict[str, Cell] = field(default_factory=lambda: defaultdict(Cell))
    params_pruned: list[float] = field(default_factory=list)
    flops_pruned: list[float] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    unpruned_from_baseline: str = ""  # why Unpruned comes from schedule=baseline runs, when it does
    model_label: str = ""

    @property
    def label(self) -> str:
        return setting_label(self.setting)


@dataclass
class Table:
    """One report table: its rows and column keys (schedules, possibly with an ``@lr=...`` tag)."""

    name: str
    title: str
    columns: list[str]
    rows: list[Row]
    expected_n: int
    footnotes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sort_value(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def _natural(text: str) -> tuple:
    """``resnet56`` before ``resnet110``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def _diff(ours: float, paper: float) -> str:
    diff = round(ours - paper, 2)
    return f"{diff + 0.0:+.2f}"  # + 0.0: no "-0.00"


def _row_sort_key(row: Row) -> tuple:
    return (
        DATASET_ORDER.get(row.dataset, 9),
        row.dataset,
        _natural(row.model),
        _freeze(row.options),
        tuple((k, _sort_value(v)) for k, v in row.setting.items()),
    )


def _column_key(schedule: str, lr_tag: str) -> str:
    return f"{schedule}@{lr_tag}" if lr_tag else schedule


def column_title(column: str) -> str:
    schedule, _, tag = column.partition("@")
    return COLUMN_NAMES.get(schedule, schedule) + (f" ({tag})" if tag else "")


def _schedule_lr(result: dict[str, Any]) -> Any:
    return ((result.get("config") or {}).get("schedule") or {}).get("lr")


def _pretrain_accuracy(result: dict[str, Any]) -> tuple[float | None, bool]:
    """The final top-1 of the run's pretrain stage, and whether it was trained with a pruner's sparsity penalty."""
    for stage in result.get("stages") or []:
        if isinstance(stage, dict) and stage.get("stage") == "pretrain":
            top1 = (stage.get("accuracy") or {}).get("top1_final")
            if isinstance(top1, (int, float)) and not isinstance(top1, bool):
                return float(top1), bool(stage.get("regularizer"))
    return None, False


def _add(cell: Cell, seed: int, value: float, source: str, notes: list[str], what: str) -> None:
    if seed in cell.values and abs(cell.values[seed] - value) > 1e-9:
        notes.append(
            f"{what}, seed {seed}: two results ({cell.sources[seed]}: {cell.values[seed]:.2f}; "
            f"{source}: {value:.2f}); the first is used"
        )
        return
    cell.values.setdefault(seed, value)
    cell.sources.setdefault(seed, source)


def build_tables(results: list[dict[str, Any]]) -> list[Table]:
    """Group results into the report's tables (see the module docstring)."""
    # schedules run at several learning rates within one table get one column per lr
    lrs: dict[tuple[str, str], set] = defaultdict(set)
    for r in results:
        table = UNPRUNED_TABLE if r["cell"]["schedule"] == "baseline" else r["cell"]["pruner"]
        lrs[(table, r["cell"]["schedule"])].add(json.dumps(_schedule_lr(r)))
    rows: dict[tuple, Row] = {}
    notes: dict[str, list[str]] = defaultdict(list)
    for r in results:
        cell = r["cell"]
        baseline = cell["schedule"] == "baseline"
        table = UNPRUNED_TABLE if baseline else cell["pruner"]
        row_setting = {} if baseline else pruned_setting(r)
        options = model_options(r)
        key = (table, cell["dataset"], cell["model"], _freeze(options), _freeze(row_setting))
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(table, cell["dataset"], cell["model"], options, row_setting)
        row.results.append(r)
        what = f"{cell['dataset']} {cell['model']} {setting_label(row_setting)}"
        if baseline:
            _add(
                row.cells["unpruned"],
                cell["seed"],
                float(r["accuracy"]["top1_final"]),
                r["_file"],
                notes[table],
                f"{what} Unpruned",
            )
            continue
        lr_tag = f"lr={_schedule_lr(r)}" if len(lrs[(table, cell["schedule"])]) > 1 else ""
        column = _column_key(cell["schedule"], lr_tag)
        _add(
            row.cells[column],
            cell["seed"],
            float(r["accuracy"]["top1_final"]),
            r["_file"],
            notes[table],
            f"{what} {column_title(column)}",
        )
        pretrain, regularized = _pretrain_accuracy(r)
        if pretrain is not None:  # a sparsity-trained large model is not the Unpruned column (normal training)
            column = "sparsity_trained" if regularized else "unpruned"
            _add(row.cells[column], cell["seed"], pretrain, r["_file"], notes[table], f"{what} {column_title(column)}")
        achieved = (r.get("pruning") or {}).get("achieved") or {}
        if isinstance(achieved.get("params_pruned_fraction"), (int, float)):
            row.params_pruned.append(100 * achieved["params_pruned_fraction"])
        if isinstance(achieved.get("flops_pruned_fraction"), (int, float)):
            row.flops_pruned.append(100 * achieved["flops_pruned_fraction"])
    # rows with no normally trained pretrain stage (predefined targets trained from scratch, or a sparsity-trained
    # large model) take Unpruned from schedule=baseline runs of the same model
    baselines = {(k[1], k[2], k[3]): row for k, row in rows.items() if k[0] == UNPRUNED_TABLE}
    for key, row in rows.items():
        if key[0] == UNPRUNED_TABLE or row.cells.get("unpruned", Cell()).values:
            continue
        sparsity_trained = bool(row.cells.get("sparsity_trained", Cell()).values)
        source = baselines.get((key[1], key[2], key[3]))
        if source is not None:
            row.cells["unpruned"] = source.cells["unpruned"]
            row.unpruned_from_baseline = (
                "the row's large model was sparsity-trained"
                if sparsity_trained
                else "no pretrain stage in this row's runs"
            )
        elif sparsity_trained:
            notes[key[0]].append(
                f"{key[1]} {key[2]}: no Unpruned accuracy (the large model was trained with the sparsity penalty); "
                "report a schedule=baseline sweep of the same model with it "
                "(the paper's: experiment=paper/unpruned_<dataset>)"
            )
    by_table: dict[str, list[Row]] = defaultdict(list)
    for row in rows.values():
        by_table[row.table].append(row)
    names = [t for t in TABLE_ORDER if t in by_table]
    names += sorted(t for t in by_table if t not in TABLE_ORDER and t != UNPRUNED_TABLE)
    names += [UNPRUNED_TABLE] if UNPRUNED_TABLE in by_table else []
    tables = []
    for name in names:
        table_rows = sorted(by_table[name], key=_row_sort_key)
        present = {c for row in table_rows for c, cell in row.cells.items() if cell.values}
        order = ["unpruned", "sparsity_trained"] + [s for s in SCHEDULE_ORDER if s != "baseline"]
        columns = sorted(
            present, key=lambda c: (order.index(c.partition("@")[0]) if c.partition("@")[0] in order else 99, c)
        )
        counts = Counter(len(cell.values) for row in table_rows for cell in row.cells.values() if cell.values)
        expected = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else 0
        # a model run with different model options (e.g. VGG-19 head) in the same table is labelled with them
        variants: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in table_rows:
            if row.options not in variants[(row.dataset, row.model)]:
                variants[(row.dataset, row.model)].append(row.options)
        for row in table_rows:
            options = variants[(row.dataset, row.model)]
            differing = sorted({k for o in options for k in o if any(o2.get(k) != o.get(k) for o2 in options)})
            suffix = ", ".join(f"{k}={row.options.get(k)}" for k in differing)
            row.model_label = row.model + (f" ({suffix})" if suffix else "")
        tables.append(
            Table(name, TABLE_TITLES.get(name, f"Pruner {name}"), columns, table_rows, expected, notes=notes[name])
        )
    return tables


# ---------------------------------------------------------------------------------------------- cell rendering


def _fmt_std(value: float | None) -> str:
    return "" if value is None else f" ± {value:.2f}"


def _published(table: Table, row: Row, column: str) -> published.Published | None:
    schedule = column.partition("@")[0]
    if column == "unpruned":
        schedule = "baseline"
    pruner = row.table
    if table.name == UNPRUNED_TABLE:  # the unpruned table matches any pruner's unpruned number of the same model
        candidates = [
            e for e in published.entries() if (e.dataset, e.model, e.schedule) == (row.dataset, row.model, "baseline")
        ]
        matching = [e for e in candidates if published.options_match(e.model_options, row.options)]
        return matching[0] if len({e.mean for e in matching}) == 1 else None
    setting = {} if column == "unpruned" else row.setting
    return published.lookup(row.dataset, row.model, pruner, setting, schedule, row.options or None)


@dataclass
class Rendered:
    """A table as strings: header and rows (cells without footnote marks for CSV, with them for Markdown)."""

    header: list[str]
    rows: list[list[str]]
    marked_rows: list[list[str]]
    notes_per_row: list[list[str]]
    footnotes: list[str]
    long: list[dict[str, Any]]


def _fraction_text(values: list[float]) -> str:
    if not values:
        return ""
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f}" + (f" ± {spread:.1f}" if spread >= 0.05 else "")


def render(table: Table) -> Rendered:
    """Cells, published values, differences and footnotes of one table."""
    paper_columns = [c for c in table.columns if any(_published(table, row, c) for row in table.rows)]
    paper_params = any(
        published.params_pruned_pct(r.dataset, r.model, r.table, r.setting) is not None for r in table.rows
    )
    pruned = table.name != UNPRUNED_TABLE
    header = ["dataset", "model"] + (["pruned", "params pruned %"] if pruned else [])
    header += ["params pruned % (paper)"] if paper_params else []
    header += ["FLOPs pruned %"] if pruned else []
    for column in table.columns:
        header.append(column_title(column))
        if column in paper_columns:
            header += [f"{column_title(column)} (paper)", f"{column_title(column)} Δ"]
    rendered = Rendered(header, [], [], [], [], [])
    for row in table.rows:
        seeds = set().union(*(set(row.cells[c].values) for c in table.columns if c != "unpruned" and c in row.cells))
        if not pruned:
            seeds = set(row.cells["unpruned"].values)
        expected = max(len(seeds), table.expected_n)
        plain = [row.dataset, row.model_label]
        if pruned:
            plain += [row.label, _fraction_text(row.params_pruned)]
        if paper_params:
            pct = published.params_pruned_pct(row.dataset, row.model, row.table, row.setting)
            plain.append("" if pct is None else f"{pct:g}")
        if pruned:
            plain.append(_fraction_text(row.flops_pruned))
        marked, row_notes = list(plain), []
        for column in table.columns:
            cell = row.cells.get(column)
            text = mark = ""
            long = {
                "table": table.name,
                "dataset": row.dataset,
                "model": row.model_label,
                "pruned": row.label if pruned else "-",
                "column": column_title(column),
                "mean": "",
                "std": "",
                "n": 0,
                "expected_n": expected,
                "seeds": "",
                "missing_seeds": "",
                "paper_mean": "",
                "paper_std": "",
                "diff": "",
                "paper_table": "",
            }
            if cell is not None and cell.values:
                n = len(cell.values)
                present = sorted(cell.values)
                reference = seeds  # the row's seeds: a seed's pretrain (or baseline run) belongs beside its retrainings
                missing = sorted(reference - set(present))
                need = max(len(reference | set(present)), table.expected_n)
                count = f"{n}/{need}" if n < need else f"{n}"
                text = f"{cell.mean:.2f}{_fmt_std(cell.std)} ({count})"
                what = (
                    f"{row.dataset} {row.model_label}"
                    + (f" {row.label}" if pruned else "")
                    + f", {column_title(column)}"
                )
                if n < need:
                    detail = (
                        f"seeds {', '.join(map(str, missing))} missing"
                        if missing
                        else f"{need - n} fewer seeds than the table's usual {need}"
                    )
                    note = f"{what}: {detail} (present: {', '.join(map(str, present))}); mean over the {n} present"
                    rendered.footnotes.append(note)
                    row_notes.append(note)
                    mark = f" [{len(rendered.footnotes)}]"
                if column == "unpruned" and row.unpruned_from_baseline:
                    note = f"{what}: from schedule=baseline runs ({row.unpruned_from_baseline})"
                    rendered.footnotes.append(note)
                    row_notes.append(note)
                    mark += f" [{len(rendered.footnotes)}]"
                long.update(mean=round(cell.mean, 4), std="" if cell.std is None else round(cell.std, 4), n=n)
                long.update(
                    expected_n=need, seeds=" ".join(map(str, present)), missing_seeds=" ".join(map(str, missing))
                )
            plain.append(text)
            marked.append(text + mark)
            if column in paper_columns:
                entry = _published(table, row, column)
                paper = "" if entry is None else entry.text()
                diff = "" if entry is None or not text else _diff(cell.mean, entry.mean)
                plain += [paper, diff]
                marked += [paper, diff]
                if entry is not None:
                    long.update(
                        paper_mean=entry.mean, paper_std="" if entry.std is None else entry.std, paper_table=entry.table
                    )
                    long.update(diff="" if not text else round(cell.mean - entry.mean, 4))
            rendered.long.append(long)
        rendered.rows.append(plain)
        rendered.marked_rows.append(marked)
        rendered.notes_per_row.append(row_notes)
    return rendered


def to_markdown(table: Table, rendered: Rendered | None = None, heading: bool = True) -> str:
    """The table as Markdown: a heading, the table, its footnotes and notes."""
    rendered = rendered or render(table)
    lines = [f"### {table.title}", ""] if heading else []
    lines.append("| " + " | ".join(rendered.header) + " |")
    lines.append("|" + " --- |" * len(rendered.header))
    lines += ["| " + " | ".join(row) + " |" for row in rendered.marked_rows]
    if rendered.footnotes or table.notes:
        lines.append("")
    lines += [f"[{i}] {note}  " for i, note in enumerate(rendered.footnotes, 1)]
    lines += [f"Note: {note}  " for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(table: Table, rendered: Rendered | None = None) -> str:
    """The table as CSV: the same cells as the Markdown table (without footnote marks) and a ``notes`` column."""
    rendered = rendered or render(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rendered.header + ["notes"])
    for row, notes in zip(rendered.rows, rendered.notes_per_row):
        writer.writerow(row + ["; ".join(notes)])
    return buffer.getvalue()


LONG_FIELDS = ["table", "dataset", "model", "pruned", "column", "mean", "std", "n", "expected_n", "seeds"]
LONG_FIELDS += ["missing_seeds", "paper_mean", "paper_std", "diff", "paper_table"]


def table(results: list[dict[str, Any]]) -> str:
    """Every table of ``results`` as Markdown (what the sweep summary prints)."""
    for result in results:
        result.setdefault("_file", "?")
    return "\n".join(to_markdown(t) for t in build_tables(results))


# ------------------------------------------------------------------------------------------------------ report


def write_report(
    results: list[dict[str, Any]], problems: list[str], out: Path, sources: list[str], use_wandb: bool = False
) -> dict[str, Any]:
    """Write the tables (Markdown + CSV), the long-form ``cells.csv``, the plots and ``report.md`` under ``out``."""
    from rethink import plots  # matplotlib only when a report is written

    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    tables = build_tables(results)
    written: dict[str, Any] = {"tables": [], "plots": [], "report": None, "wandb": None}
    long_rows: list[dict[str, Any]] = []
    sections = []
    for t in tables:
        rendered = render(t)
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
    written["plots"] = plots.make_plots(tables, plot_dir)
    lines = [
        "# Rethinking the Value of Network Pruning — reproduction report",
        "",
        f"{len(results)} result(s) from {', '.join(sources)}. Cells: final top-1 accuracy (%), mean ± std (n seeds); "
        "`(n/N) [k]`: N seeds expected, footnote k names the missing ones. (paper): the published number "
        "(rethink/published.json, from the authors' slides); Δ = ours - paper.",
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
    if problems:
        lines += ["## Files not reported", ""] + [f"- {p}" for p in problems] + [""]
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    written["report"] = out / "report.md"
    if use_wandb:
        written["wandb"] = upload_wandb(written, out, problems)
    return written


def upload_wandb(written: dict[str, Any], out: Path, problems: list[str]) -> str:
    """Log the tables as W&B Tables and the plots as images in one ``job_type="report"`` run (offline without an API
    key, or as WANDB_MODE says); returns the run's directory. The run is always finished."""
    import wandb

    from rethink.training import wandb_mode

    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "rethink"),
        job_type="report",
        mode=wandb_mode(None),
        dir=str(out),
        config={"tables": [t["name"] for t in written["tables"]], "problems": problems},
    )
    try:
        for t in written["tables"]:
            rendered = t["rendered"]
            run.log({f"table/{t['name']}": wandb.Table(columns=rendered.header, data=rendered.rows)})
        for title, path in written["plots"]:
            run.log({f"plot/{path.stem}": wandb.Image(str(path), caption=title)})
        run.save(str(out / "report.md"), base_path=str(out), policy="now")
        run_dir = str(Path(run.dir).parent)
    finally:
        run.finish()
    return run_dir


class SweepSummary(Callback):
    """Hydra callback: after a multirun, print the table of the sweep's results."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results, problems = collect([sweep_dir])
        if results:
            print(f"\nTest top-1 accuracy (%), final epoch, mean ± std (n seeds) — {sweep_dir}\n{table(results)}")
        for problem in problems:
            print(f"rethink.report: {problem}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """CLI: write the report of every result under the given paths; 0 when anything was written."""
    parser = argparse.ArgumentParser(prog="python -m rethink.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched for result.json) or result files")
    parser.add_argument("--out", default="report", help="output directory (default: ./report)")
    parser.add_argument("--wandb", action="store_true", help="also log tables and plots to W&B (job_type=report)")
    args = parser.parse_args(argv)
    results, problems = collect(args.paths)
    for problem in problems:
        print(f"rethink.report: {problem}", file=sys.stderr)
    if not results:
        print("rethink.report: no readable result.json: nothing written", file=sys.stderr)
        return 1
    written = write_report(results, problems, Path(args.out), list(args.paths), use_wandb=args.wandb)
    print(table(results))
    print(
        f"rethink.report: wrote {written['report']} "
        f"({len(written['tables'])} table(s), {len(written['plots'])} plot(s))",
        file=sys.stderr,
    )
    if written["wandb"]:
        print(f"rethink.report: W&B run in {written['wandb']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
