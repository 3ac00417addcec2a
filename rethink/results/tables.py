"""Result files into report tables: reading and checking ``result.json`` files (:func:`check`, :func:`collect`) and
grouping them into :class:`Table` s of :class:`Row` s of :class:`Cell` s (:func:`build_tables`).

One table per pruner (the paper's tables: L1-norm, Network Slimming, SSS, weight pruning, ... and one of unpruned
models). Rows are (dataset, model, pruned model: variant or ratio); columns are Unpruned (the normally trained large
model: the ``pretrain`` stage of the row's runs, else ``schedule=baseline`` runs of the same model), Sparsity-trained
(the pretrain stage of slimming and SSS, trained with their penalty, so never Unpruned) and one per retraining
schedule. A cell holds the top-1 accuracy of each seed at the table's ``metric``: ``best`` (the best epoch, what the
reference code and so the paper report; the default) or ``final`` (the last epoch); ``result.json`` keeps both. The
row's pruned params % and FLOPs % are the runs' ``pruning.achieved`` fractions. Each cell also keeps what in its runs'
settings differs from the paper's protocol (:mod:`rethink.results.protocol`). How a table is shown is
:mod:`rethink.results.render`.

Files that are unreadable, partial (required keys missing), failed or foreign (not a rethink result) are returned as
problems; the rest is still reported.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rethink.results.detection import check_detection, is_detection
from rethink.results.naming import pruned_setting, pruner_table_order, pruner_table_title, setting_label
from rethink.results.protocol import PRETRAIN_SCOPE, RETRAIN_SCOPE, differences
from rethink.results.recipes import restart_recipes

SCHEDULE_ORDER = ("baseline", "finetune", "scratch_e", "scratch_b", "finetune_restart", "finetune_restart_full")
SCHEDULE_ORDER += ("lottery", "lr_rewind")
COLUMN_NAMES = {
    "unpruned": "Unpruned",
    "sparsity_trained": "Sparsity-trained",
    "pruned": "Pruned (before retraining)",
    "finetune": "Fine-tuned",
    "scratch_e": "Scratch-E",
    "scratch_b": "Scratch-B",
    "finetune_restart": "Fine-tune-restart",
    "finetune_restart_full": "Fine-tune-restart (full schedule)",
    "lottery": "Lottery",
    "lr_rewind": "LR-rewind",
}
UNPRUNED_TABLE = "unpruned"
UNPRUNED_TITLE = "Unpruned models"
REQUIRED = (
    ("cell", "dataset"),
    ("cell", "model"),
    ("cell", "pruner"),
    ("cell", "schedule"),
    ("cell", "seed"),
    ("accuracy", "top1_final"),
)
DATASET_ORDER = {"cifar10": 0, "cifar100": 1, "imagenet": 2}
METRICS = ("best", "final")  # which epoch's accuracy a table reports
METRIC_NAMES = {"best": "best epoch", "final": "final epoch"}


# ------------------------------------------------------------------------------------------------------- reading


def check(result: Any) -> str | None:
    """Why ``result`` cannot be reported (foreign / partial / failed), or None when it can."""
    if not isinstance(result, dict):
        return f"foreign: a JSON {type(result).__name__}, not a result object"
    if not isinstance(result.get("cell"), dict) and not isinstance(result.get("accuracy"), dict):
        return "foreign: not a rethink result.json (no 'cell' or 'accuracy' keys)"
    if is_detection(result):
        return check_detection(result)
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
    """The per-seed top-1 accuracies of one (row, column), and what in their runs' settings is not the paper's."""

    values: dict[int, float] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

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
    metric: str = "best"


def table_title(name: str) -> str:
    """The title of the table ``name`` (a pruner's, or the unpruned models')."""
    return UNPRUNED_TITLE if name == UNPRUNED_TABLE else pruner_table_title(name)


def _sort_value(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def _natural(text: str) -> tuple:
    """``resnet56`` before ``resnet110``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


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


def _stage(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The run's (last) own record of stage ``name`` (not a guided pruner's source cell's), or {}."""
    found = [
        s for s in result.get("stages") or [] if isinstance(s, dict) and s.get("stage") == name and "source" not in s
    ]
    return found[-1] if found else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def top1(accuracy: dict[str, Any] | None, metric: str) -> tuple[float | None, bool]:
    """The top-1 of ``accuracy`` at ``metric``, and whether it fell back to the final epoch (no best recorded)."""
    accuracy = accuracy or {}
    value = _number(accuracy.get(f"top1_{metric}"))
    if value is None and metric != "final":
        return _number(accuracy.get("top1_final")), True
    return value, False


def _stage_accuracy(result: dict[str, Any], name: str, metric: str = "final") -> tuple[float | None, bool]:
    """The top-1 of the run's stage ``name`` at ``metric`` (prune: the pruned model, evaluated once), or None."""
    return top1(_stage(result, name).get("accuracy"), metric)


def _add(
    cell: Cell, seed: int, value: float, source: str, notes: list[str], what: str, differs: Sequence[str] = ()
) -> None:
    if seed in cell.values and abs(cell.values[seed] - value) > 1e-9:
        notes.append(
            f"{what}, seed {seed}: two results ({cell.sources[seed]}: {cell.values[seed]:.2f}; "
            f"{source}: {value:.2f}); the first is used"
        )
        return
    cell.values.setdefault(seed, value)
    cell.sources.setdefault(seed, source)
    cell.differences += [d for d in differs if d not in cell.differences]


def build_tables(results: list[dict[str, Any]], metric: str = "best") -> list[Table]:
    """Group results into the report's tables (see the module docstring); cells at ``metric`` (best | final)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    fallbacks: dict[str, int] = Counter()  # results without a best-epoch accuracy, per table
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
        value, fell_back = top1(r["accuracy"], metric)
        fallbacks[table] += fell_back
        if baseline:
            differs = differences(r, PRETRAIN_SCOPE)
            _add(row.cells["unpruned"], cell["seed"], value, r["_file"], notes[table], f"{what} Unpruned", differs)
            continue
        lr_tag = f"lr={_schedule_lr(r)}" if len(lrs[(table, cell["schedule"])]) > 1 else ""
        column = _column_key(cell["schedule"], lr_tag)
        title = f"{what} {column_title(column)}"
        _add(row.cells[column], cell["seed"], value, r["_file"], notes[table], title, differences(r, RETRAIN_SCOPE))
        pruned, _ = _stage_accuracy(r, "prune")
        if pruned is not None and cell["schedule"] == "finetune":  # one pruned model per seed: its fine-tuned cell's
            title = f"{what} {column_title('pruned')}"
            _add(row.cells["pruned"], cell["seed"], pruned, r["_file"], notes[table], title)
        pretrain, fell_back = _stage_accuracy(r, "pretrain", metric)
        if pretrain is not None:  # a sparsity-trained large model is not the Unpruned column (normal training)
            fallbacks[table] += fell_back
            column = "sparsity_trained" if _stage(r, "pretrain").get("regularizer") else "unpruned"
            title = f"{what} {column_title(column)}"
            _add(
                row.cells[column],
                cell["seed"],
                pretrain,
                r["_file"],
                notes[table],
                title,
                differences(r, PRETRAIN_SCOPE),
            )
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
    first = pruner_table_order()
    names = [t for t in first if t in by_table]
    names += sorted(t for t in by_table if t not in first and t != UNPRUNED_TABLE)
    names += [UNPRUNED_TABLE] if UNPRUNED_TABLE in by_table else []
    for table, text in restart_recipes(results, column_title).items():
        notes[table].append(text)
    for table, count in fallbacks.items():
        if count:
            notes[table].append(
                f"{count} accuracies have no best-epoch value recorded (top1_best); their final epoch is used"
            )
    tables = []
    for name in names:
        table_rows = sorted(by_table[name], key=_row_sort_key)
        present = {c for row in table_rows for c, cell in row.cells.items() if cell.values}
        order = ["unpruned", "sparsity_trained", "pruned"] + [s for s in SCHEDULE_ORDER if s != "baseline"]
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
        tables.append(Table(name, table_title(name), columns, table_rows, expected, notes=notes[name], metric=metric))
    return tables
