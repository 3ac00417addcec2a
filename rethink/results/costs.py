"""What a report's results cost: per table, a compact table of the device-hours its cells' stages actually spent (the
stage records' ``compute_s`` and ``device``), per column and split by device kind (CPU / GPU), beside each row's
requested pruning setting and the achieved pruned fractions. Each artifact (stage key) is counted once in the whole
report (:data:`RULE`). Markdown for ``report.md`` (:func:`to_markdown`) and the long-form ``costs.csv``
(:func:`write_csv`)."""

from __future__ import annotations

import csv
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rethink.results import meta
from rethink.results.comparison import NAME as COMPARISON
from rethink.results.tables import UNPRUNED_TABLE, Row, Table, column_title

KINDS = ("CPU", "GPU")
ACHIEVED = (("channels", "channels_pruned_fraction"), ("params", "params_pruned_fraction"))
ACHIEVED += (("FLOPs", "flops_pruned_fraction"),)
RULE = (
    "Device-hours: each stage's recorded wall time of its computation (`compute_s`) times its processes (a run on "
    "2 GPUs spends 2 GPU-hours an hour), split by device kind. Each artifact (stage key) is counted once in the whole "
    "report, in the first table (report order), row and column that use it: a pretrain shared by Fine-tuned, "
    "Scratch-E and Scratch-B cells counts once, in Unpruned (Sparsity-trained when trained with a penalty); prune "
    "stages and iterative rounds in Pruned; a retraining in its schedule's column. A resumed stage counts its last "
    "run's time only. The criteria comparison reuses the pruners' runs and has no cost table."
)
UNKNOWN = "`?`: cost unknown — stage records without `compute_s`/`device` (written before runs recorded them)"
CSV_FIELDS = ["table", "dataset", "model", "pruned", "requested", "channels_pruned_pct", "params_pruned_pct"]
CSV_FIELDS += ["flops_pruned_pct", "column", "cpu_hours", "gpu_hours", "artifacts", "unknown_cost"]


def device_kind(device: str) -> tuple[str, int]:
    """``("GPU", 2)`` for ``cuda: NVIDIA H200 x2``: the kind of device and the number of processes."""
    count = re.search(r" x(\d+)$", device)
    return ("CPU" if device.startswith("cpu") else "GPU"), int(count.group(1)) if count else 1


@dataclass
class Spent:
    """Device-hours by kind of the artifacts counted in one place, and how many had no recorded cost."""

    hours: dict[str, float] = field(default_factory=dict)
    artifacts: int = 0
    unknown: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.artifacts += 1
        seconds, device = record.get("compute_s"), record.get("device")
        if not isinstance(seconds, (int, float)) or not isinstance(device, str):
            self.unknown += 1
            return
        kind, processes = device_kind(device)
        self.hours[kind] = self.hours.get(kind, 0.0) + seconds * processes / 3600

    def __iadd__(self, other: Spent) -> Spent:
        for kind, hours in other.hours.items():
            self.hours[kind] = self.hours.get(kind, 0.0) + hours
        self.artifacts += other.artifacts
        self.unknown += other.unknown
        return self

    def text(self) -> str:
        """``0.42 CPU-h + 3.1 GPU-h``, ``+ ?`` where some cost is unknown; "" for nothing counted here."""
        parts = [f"{_hours(self.hours[k])} {k}-h" for k in KINDS if k in self.hours]
        return " + ".join(parts + ["?"] * bool(self.unknown))


def _hours(hours: float) -> str:
    return f"{hours:.0f}" if hours >= 100 else f"{hours:.3g}"


@dataclass
class CostTable:
    """The cost of one report table: per row, what each column spent (``spent[i][column]``)."""

    table: Table
    columns: list[str]
    spent: list[dict[str, Spent]]

    def total(self, column: str | None = None) -> Spent:
        """What ``column`` (None: every column) spent over all rows."""
        total = Spent()
        for row in self.spent:
            for c, spent in row.items():
                if column in (None, c):
                    total += spent
        return total


def _stage_column(result: dict[str, Any], record: dict[str, Any]) -> str:
    """The table column a stage's cost belongs to: the large model's, the pruned model's or its schedule's."""
    if record.get("stage") == "pretrain":
        return "sparsity_trained" if record.get("regularizer") else "unpruned"
    if record.get("stage") != "retrain":
        return "pruned"
    return "unpruned" if meta.trains_unpruned(result) else result["cell"]["schedule"]


def cost_tables(tables: list[Table]) -> list[CostTable]:
    """The cost of each table (but the criteria comparison), each artifact counted once (:data:`RULE`)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for table in tables:
        if table.name == COMPARISON:
            continue
        spent: list[dict[str, Spent]] = []
        for row in table.rows:
            spent.append(defaultdict(Spent))
            for result in row.results:
                for record in result.get("stages") or []:
                    if not isinstance(record, dict) or record.get("key") is None:
                        continue  # e.g. the prune stage of a predefined target: nothing was computed
                    if (str(record.get("stage")), record["key"]) not in seen:
                        seen.add((str(record.get("stage")), record["key"]))
                        spent[-1][_stage_column(result, record)].add(record)
        used = {c for row in spent for c in row}
        front = [c for c in ("unpruned", "sparsity_trained", "pruned") if c in used or c in table.columns]
        columns = front + [c for c in table.columns if c not in front] + sorted(used - set(front) - set(table.columns))
        out.append(CostTable(table, columns, spent))
    return out


def requested(row: Row) -> str:
    """The row's requested pruning setting, ``ratio=0.5`` / ``variant=A``."""
    return ", ".join(f"{k}={v}" for k, v in row.setting.items())


def achieved(row: Row) -> dict[str, float]:
    """The mean achieved pruned fractions (%) of the row's runs, by name (channels, params, FLOPs)."""
    out = {}
    for name, key in ACHIEVED:
        values = [
            a[key]
            for r in row.results
            if isinstance(a := (r.get("pruning") or {}).get("achieved"), dict) and isinstance(a.get(key), (int, float))
        ]
        if values:
            out[name] = 100 * statistics.mean(values)
    return out


def to_markdown(costed: list[CostTable]) -> str:
    """The Compute cost section of ``report.md``: the rule, the report's total, one cost table per report table."""
    everything = Spent()
    for cost in costed:
        everything += cost.total()
    lines = ["## Compute cost", "", RULE, ""]
    unknown = f", {everything.unknown} of unknown cost" if everything.unknown else ""
    lines += [f"Total: {everything.text() or 'nothing'} over {everything.artifacts} artifact(s){unknown}.", ""]
    for cost in costed:
        pruned = cost.table.name != UNPRUNED_TABLE
        header = ["dataset", "model"] + (["pruned", "requested", "achieved: pruned %"] if pruned else [])
        header += [column_title(c) for c in cost.columns] + ["total"]
        lines += [f"### {cost.table.title} — device-hours", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + " --- |" * len(header))
        for row, spent in zip(cost.table.rows, cost.spent):
            cells = [row.dataset, row.model_label]
            if pruned:
                ratios = ", ".join(f"{name} {value:.1f}" for name, value in achieved(row).items())
                cells += [row.label, requested(row), ratios]
            total = Spent()
            for c in cost.columns:
                total += spent.get(c, Spent())
            cells += [spent[c].text() if c in spent else "" for c in cost.columns] + [total.text()]
            lines.append("| " + " | ".join(cells) + " |")
        totals = ["**total**", ""] + [""] * 3 * pruned
        totals += [cost.total(c).text() for c in cost.columns] + [cost.total().text()]
        lines += ["| " + " | ".join(totals) + " |", ""]
        if cost.total().unknown:
            lines += [UNKNOWN, ""]
    return "\n".join(lines)


def write_csv(costed: list[CostTable], path: Path) -> None:
    """``costs.csv``: one line per (table, row, column), hours by kind, artifacts counted, of them of unknown cost."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for cost in costed:
            for row, spent in zip(cost.table.rows, cost.spent):
                ratios = achieved(row)
                for c in cost.columns:
                    here = spent.get(c, Spent())
                    writer.writerow(
                        {
                            "table": cost.table.name,
                            "dataset": row.dataset,
                            "model": row.model_label,
                            "pruned": row.label,
                            "requested": requested(row),
                            "channels_pruned_pct": _pct(ratios.get("channels")),
                            "params_pruned_pct": _pct(ratios.get("params")),
                            "flops_pruned_pct": _pct(ratios.get("FLOPs")),
                            "column": column_title(c),
                            "cpu_hours": round(here.hours.get("CPU", 0.0), 6),
                            "gpu_hours": round(here.hours.get("GPU", 0.0), 6),
                            "artifacts": here.artifacts,
                            "unknown_cost": here.unknown,
                        }
                    )


def _pct(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)
