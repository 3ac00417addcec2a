"""Selection criteria compared: where two or more pruners were run at the same targets on the same model (e.g.
``experiment=selection_cifar10``: L1-norm, ThiNet, regression and random selection of VGG-16-A, ResNet-56-A/B), one
table puts their accuracy right after pruning and after fine-tuning side by side, a row per (dataset, model, pruned
setting). Scratch-E/B are the same for every criterion (a fresh initialisation of the same architecture) and stay in
the pruners' own tables."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from rethink.results.detection import is_detection
from rethink.results.tables import UNPRUNED_TABLE, Row, Table, build_tables

NAME = "criteria"
COMPARED = ("pruned", "finetune")  # the columns that differ between criteria
TITLE = "Channel selection criteria compared (same targets, same trained large models)"


def criteria_table(tables: list[Table]) -> Table | None:
    """The comparison of the pruners in ``tables`` that share a row, or None when no row has two."""
    shared: dict[tuple, dict[str, Row]] = defaultdict(dict)
    for table in tables:
        if table.name == UNPRUNED_TABLE:
            continue
        for row in table.rows:
            identity = json.dumps([row.options, row.setting], sort_keys=True)  # settings may hold dicts or lists
            key = (row.dataset, row.model, identity)
            shared[key][table.name] = row
    rows, columns = [], []
    for by_pruner in shared.values():
        if len(by_pruner) < 2:
            continue
        first = next(iter(by_pruner.values()))
        row = Row(NAME, first.dataset, first.model, first.options, first.setting, model_label=first.model_label)
        if "unpruned" in first.cells:
            row.cells["unpruned"] = first.cells["unpruned"]
        for pruner, source in by_pruner.items():
            for column in COMPARED:
                if column in source.cells:
                    key = f"{pruner}: {'pruned' if column == 'pruned' else 'fine-tuned'}"
                    row.cells[key] = source.cells[column]
                    columns.append(key)
        rows.append(row)
    if not rows:
        return None
    ordered = ["unpruned"] * any("unpruned" in r.cells for r in rows) + list(dict.fromkeys(columns))
    return Table(NAME, TITLE, ordered, rows, max(t.expected_n for t in tables), metric=tables[0].metric)


def report_tables(results: list[dict[str, Any]], metric: str = "best") -> list[Table]:
    """Every table of ``results`` at ``metric``: one per pruner, the unpruned models, and the criteria comparison
    (detection results have their own table: :mod:`rethink.results.detection`)."""
    tables = build_tables([r for r in results if not is_detection(r)], metric)
    compared = criteria_table(tables)
    return tables + ([compared] if compared is not None else [])
