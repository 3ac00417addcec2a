"""Report tables as text: each :class:`~rethink.results.tables.Table` rendered into rows of strings
(:func:`render`), as Markdown (:func:`to_markdown`) and CSV (:func:`to_csv`), and every table of a list of results as
Markdown (:func:`table`, what the sweep summary prints).

Each cell is ``mean ± std (n)`` of the top-1 accuracy over seeds at the table's metric (best or final epoch; the
heading names it) (std: sample standard deviation, n-1). A cell with fewer seeds than its row (or than the table's
usual count) reads ``mean ± std (n/N) [k]`` with footnote ``k`` naming the missing seeds: incomplete cells are marked,
never averaged silently. Beside every schedule with a published number (:mod:`rethink.results.published`, the paper's
tables, best-epoch accuracies): the paper's value and the difference ours - paper. Where the paper publishes changes
instead (ThiNet, regression pruning): our change against our own unpruned model beside the paper's change and the
unpruned accuracy it is relative to (``-1.23 vs 71.03``). Only like is compared with like: a cell whose runs'
settings differ from the paper's protocol (:mod:`rethink.results.protocol`: width, data subset, epochs, batch, lr)
gets no paper value or difference, and a footnote naming what differs and the paper's number.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from typing import Any

from rethink.results import meta, published
from rethink.results.comparison import report_tables
from rethink.results.detection import detection_table
from rethink.results.tables import METRIC_NAMES, UNPRUNED_TABLE, Row, Table, column_title

# ---------------------------------------------------------------------------------------------- number formatting


def _fmt_std(value: float | None) -> str:
    return "" if value is None else f" ± {value:.2f}"


def _fraction_text(values: list[float]) -> str:
    if not values:
        return ""
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f}" + (f" ± {spread:.1f}" if spread >= 0.05 else "")


def _diff(ours: float, paper: float) -> str:
    diff = round(ours - paper, 2)
    return f"{diff + 0.0:+.2f}"  # + 0.0: no "-0.00"


# ---------------------------------------------------------------------------------------------- cell rendering


def _published(table: Table, row: Row, column: str) -> published.Published | None:
    schedule = meta.unpruned_schedule() if column == "unpruned" else column
    pruner = row.table
    if table.name == UNPRUNED_TABLE:  # the unpruned table matches any pruner's unpruned number of the same model
        candidates = [
            e for e in published.entries() if (e.dataset, e.model, e.schedule) == (row.dataset, row.model, schedule)
        ]
        matching = [e for e in candidates if published.options_match(e.model_options, row.options)]
        return matching[0] if len({e.mean for e in matching}) == 1 else None
    setting = {} if column == "unpruned" else row.setting
    return published.lookup(row.dataset, row.model, pruner, setting, schedule, row.options or None)


def _relative(table: Table, row: Row, column: str) -> published.RelativePublished | None:
    """A published change (ThiNet, regression) for this cell, or None."""
    if table.name == UNPRUNED_TABLE or column == "unpruned":
        return None
    return published.lookup_relative(row.dataset, row.model, row.table, row.setting, column, row.options or None)


def _change(row: Row, cell_mean: float) -> str:
    """Our change against our own unpruned model (the row's Unpruned cell), or "" without it."""
    unpruned = row.cells.get("unpruned")
    return _diff(cell_mean, unpruned.mean) if unpruned is not None and unpruned.values else ""


@dataclass
class Rendered:
    """A table as strings: header and rows (cells without footnote marks for CSV, with them for Markdown)."""

    header: list[str]
    rows: list[list[str]]
    marked_rows: list[list[str]]
    notes_per_row: list[list[str]]
    footnotes: list[str]
    long: list[dict[str, Any]]


def render(table: Table) -> Rendered:
    """Cells, published values, differences and footnotes of one table."""
    paper_columns = [c for c in table.columns if any(_published(table, row, c) for row in table.rows)]
    relative_columns = [c for c in table.columns if any(_relative(table, row, c) for row in table.rows)]
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
            header += [f"{column_title(column)} (paper, {METRIC_NAMES[published.METRIC]})", f"{column_title(column)} Δ"]
        if column in relative_columns:
            header += [f"{column_title(column)} vs unpruned", f"{column_title(column)} vs unpruned (paper)"]
    rendered = Rendered(header, [], [], [], [], [])
    if table.metric != published.METRIC and (paper_columns or relative_columns):
        rendered.footnotes.append(
            f"Δ and changes compare our {table.metric}-epoch accuracy with the paper's {published.METRIC}-epoch numbers"
        )
    for row in table.rows:
        seeds = set().union(*(set(row.cells[c].values) for c in table.columns if c != "unpruned" and c in row.cells))
        if not pruned:
            seeds = set(row.cells["unpruned"].values)
        expected = max(len(seeds), table.expected_n)
        plain = [row.dataset, row.model_text]
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
                "model": row.model_text,
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
                "paper_change": "",
                "paper_relative_to": "",
                "metric": table.metric,
                "not_paper_protocol": "",
            }
            what = f"{row.dataset} {row.model_text}" + (f" {row.label}" if pruned else "") + f", {column_title(column)}"
            if cell is not None and cell.values:
                n = len(cell.values)
                present = sorted(cell.values)
                reference = seeds  # the row's seeds: a seed's pretrain (or baseline run) belongs beside its retrainings
                missing = sorted(reference - set(present))
                need = max(len(reference | set(present)), table.expected_n)
                count = f"{n}/{need}" if n < need else f"{n}"
                text = f"{cell.mean:.2f}{_fmt_std(cell.std)} ({count})"
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
            compared = _published(table, row, column) or _relative(table, row, column)
            unlike = bool(text and cell.differences and compared)
            paper_mark = ""
            if unlike:
                differs = ", ".join(cell.differences)
                note = f"{what}: not the paper's settings ({differs}); the paper's {compared.text()} is not compared"
                rendered.footnotes.append(note)
                row_notes.append(note)
                mark += f" [{len(rendered.footnotes)}]"
                long.update(not_paper_protocol="; ".join(cell.differences))
            elif compared is not None and compared.note:  # what the paper's number is, where it needs saying
                rendered.footnotes.append(f"{what} (paper): {compared.note}")
                row_notes.append(rendered.footnotes[-1])
                paper_mark = f" [{len(rendered.footnotes)}]"
            plain.append(text)
            marked.append(text + mark)
            if column in paper_columns:
                entry = None if unlike else _published(table, row, column)
                paper = "" if entry is None else entry.text()
                diff = "" if entry is None or not text else _diff(cell.mean, entry.mean)
                plain += [paper, diff]
                marked += [paper + (paper_mark if paper else ""), diff]
                if entry is not None:
                    long.update(
                        paper_mean=entry.mean, paper_std="" if entry.std is None else entry.std, paper_table=entry.table
                    )
                    long.update(diff="" if not text else round(cell.mean - entry.mean, 4))
            if column in relative_columns:
                change = None if unlike else _relative(table, row, column)
                ours = _change(row, cell.mean) if text else ""
                paper_change = "" if change is None else change.text()
                plain += [ours, paper_change]
                marked += [ours, paper_change + (paper_mark if paper_change else "")]
                if change is not None:
                    long.update(paper_table=change.table, paper_change=change.delta)
                    long.update(paper_relative_to=change.relative_to)
            rendered.long.append(long)
        rendered.rows.append(plain)
        rendered.marked_rows.append(marked)
        rendered.notes_per_row.append(row_notes)
    return rendered


def to_markdown(table: Table, rendered: Rendered | None = None, heading: bool = True) -> str:
    """The table as Markdown: a heading, the table, its footnotes and notes."""
    rendered = rendered or render(table)
    lines = [f"### {table.title} — top-1 (%), {METRIC_NAMES[table.metric]}", ""] if heading else []
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


# the columns of the long-form cells.csv: one line per (row, column) of every table
LONG_FIELDS = ["table", "dataset", "model", "pruned", "column", "mean", "std", "n", "expected_n", "seeds"]
LONG_FIELDS += ["missing_seeds", "paper_mean", "paper_std", "diff", "paper_table", "paper_change", "paper_relative_to"]
LONG_FIELDS += ["metric", "not_paper_protocol"]


def table(results: list[dict[str, Any]], metric: str = published.METRIC) -> str:
    """Every table of ``results`` as Markdown at ``metric`` (what the sweep summary prints), the detection table
    last."""
    for result in results:
        result.setdefault("_file", "?")
    return "\n".join([*(to_markdown(t) for t in report_tables(results, metric)), detection_table(results)]).rstrip()
