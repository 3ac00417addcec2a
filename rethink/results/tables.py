"""Results into report tables: grouping the results of ``result.json`` files (read by :mod:`rethink.results.files`)
into :class:`Table` s of :class:`Row` s of :class:`Cell` s (:func:`build_tables`).

One table per pruner (the paper's tables: L1-norm, Network Slimming, SSS, weight pruning, ... and one of unpruned
models). Rows are (dataset, model, pruned model: variant or ratio) of identical settings apart from the seed
(:mod:`rethink.results.identity`): runs that differ in anything else (``pretrain.epochs``, the pruner's options, ...)
are separate rows, labelled by what differs; a schedule run with several settings (two ``schedule.lr``) gets a row
per setting, holding that column alone, not a column per setting. Columns are Unpruned (the normally trained large
model: the ``pretrain`` stage of the row's runs, else ``schedule=baseline`` runs of the same model), Sparsity-trained
(the pretrain stage of slimming and SSS, trained with their penalty, so never Unpruned) and one per retraining
schedule. A cell holds the top-1 accuracy of each seed at the table's ``metric``: ``best`` (the best epoch, what the
reference code and so the paper report; the default) or ``final`` (the last epoch); ``result.json`` keeps both. The
row's pruned params % and FLOPs % are the runs' ``pruning.achieved`` fractions. Each cell also keeps what in its runs'
settings differs from the paper's protocol (:mod:`rethink.results.protocol`). How a table is shown is
:mod:`rethink.results.render`.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rethink.pruning.naming import (
    pruned_setting,
    pruner_table_order,
    pruner_table_title,
    recorded_pruners,
    setting_label,
)
from rethink.results import meta
from rethink.results.files import stage_accuracy, stage_record, top1
from rethink.results.identity import (
    Frozen,
    deduplicate,
    freeze,
    group_split,
    labels,
    settings_of,
    shared_settings,
    split,
)
from rethink.results.protocol import PRETRAIN_SCOPE, RETRAIN_SCOPE, differences
from rethink.results.recipes import restart_recipes

# the report's own columns, before the schedules' (whose titles and order come from rethink.results.meta)
OWN_COLUMNS = {"unpruned": "Unpruned", "sparsity_trained": "Sparsity-trained", "pruned": "Pruned (before retraining)"}
UNPRUNED_TABLE = "unpruned"
UNPRUNED_TITLE = "Unpruned models"
METRICS = ("best", "final")  # which epoch's accuracy a table reports
METRIC_NAMES = {"best": "best epoch", "final": "final epoch"}


# ------------------------------------------------------------------------------------------------ row identity


def model_options(result: dict[str, Any]) -> dict[str, Any]:
    """The run's model config without its name (e.g. ``head``, ``width_multiplier``); {} when not recorded."""
    model = (result.get("config") or {}).get("model") or {}
    return {k: v for k, v in model.items() if k not in ("name", "_target_")}


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
    settings: dict[str, Any] = field(default_factory=dict)  # what its pruned model depends on, seed aside
    variant: dict[str, Any] = field(default_factory=dict)  # a schedule run with several settings: this row's
    settings_label: str = ""  # what in its settings differs from the rows of the same model and pruned setting

    @property
    def label(self) -> str:
        return setting_label(self.setting)

    @property
    def model_text(self) -> str:
        """The model label and, where rows of it differ in settings, this row's: ``vgg16 (pretrain.epochs=5)``."""
        model = self.model_label or self.model
        return f"{model} ({self.settings_label})" if self.settings_label else model


@dataclass
class Table:
    """One report table: its rows and column keys (``unpruned``, ``pruned``, ... and the schedules)."""

    name: str
    title: str
    columns: list[str]
    rows: list[Row]
    expected_n: int
    footnotes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metric: str = "best"


def table_title(name: str, recorded: Mapping[str, Any] | None = None) -> str:
    """The title of the table ``name`` (a pruner's — ``recorded``: what its results recorded of it —, or the unpruned
    models')."""
    return UNPRUNED_TITLE if name == UNPRUNED_TABLE else pruner_table_title(name, recorded)


def _sort_value(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def _natural(text: str) -> tuple:
    """``resnet56`` before ``resnet110``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def _row_sort_key(row: Row) -> tuple:
    return (
        meta.dataset_order(row.dataset),
        row.dataset,
        _natural(row.model),
        freeze(row.options),
        tuple((k, _sort_value(v)) for k, v in row.setting.items()),
    )


def column_title(column: str) -> str:
    """``Scratch-B``: the title of a table column (a schedule, or ``unpruned`` ...)."""
    return OWN_COLUMNS.get(column) or meta.schedule_title(column)


def column_order(column: str) -> tuple[int, str]:
    """Where a column comes in a table: the report's own columns, then the schedules' by their column order."""
    own = list(OWN_COLUMNS)
    return (own.index(column) - len(own) if column in own else meta.schedule_order(column)), column


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


def _table_of(result: dict[str, Any]) -> str:
    return UNPRUNED_TABLE if meta.trains_unpruned(result) else result["cell"]["pruner"]


def _what(result: dict[str, Any]) -> str:
    cell = result["cell"]
    setting = "" if meta.trains_unpruned(result) else f" {setting_label(pruned_setting(result))}"
    return f"{cell['dataset']} {cell['model']}{setting}"


def _base_key(result: dict[str, Any], base: dict[str, Any]) -> tuple:
    """The row of ``result`` but for a schedule variant: table, dataset, model, options, pruned setting and the
    settings its pruned model depends on."""
    cell = result["cell"]
    setting = {} if meta.trains_unpruned(result) else pruned_setting(result)
    options = freeze(model_options(result))
    return (_table_of(result), cell["dataset"], cell["model"], options, freeze(setting), freeze(base))


def _settings(results: list[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Each result's settings, split (:func:`~rethink.results.identity.split`). A result trained without the large
    model (Scratch-E/B of a predefined target) takes the pretrain recipe of the runs it is tabulated with, where those
    were trained with one: it does not depend on it, and belongs in their row."""
    parts = {id(r): split(settings_of(r)) for r in results}
    recipes: dict[tuple, dict[Frozen, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        others, recipe = group_split(parts[id(r)][0], "pretrain")
        if recipe:
            recipes[_base_key(r, others)][freeze(recipe)] = recipe
    for r in results:
        (base, retrain), found = parts[id(r)], recipes[_base_key(r, parts[id(r)][0])]
        if not group_split(base, "pretrain")[1] and len(found) == 1:
            parts[id(r)] = (base | next(iter(found.values())), retrain)
    return parts


def _rows(results: list[dict[str, Any]]) -> dict[tuple, Row]:
    """One row per base key (:func:`_base_key`), and one more per setting of a schedule run with several settings in
    it (whose column it alone holds); each row's runs, in order."""
    parts = _settings(results)
    variants: dict[tuple, dict[Frozen, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        base, retrain = parts[id(r)]
        variants[(_base_key(r, base), r["cell"]["schedule"])][freeze(retrain)] = retrain
    rows: dict[tuple, Row] = {}
    for r in results:
        base, retrain = parts[id(r)]
        cell, key = r["cell"], _base_key(r, base)
        several = variants[(key, cell["schedule"])]
        variant = (cell["schedule"], freeze(retrain)) if len(several) > 1 else ()
        if (*key, variant) not in rows:
            setting = {} if meta.trains_unpruned(r) else pruned_setting(r)
            row = Row(key[0], cell["dataset"], cell["model"], model_options(r), setting, settings=base)
            row.model_label = ((r.get("options") or {}).get("model") or {}).get("label") or cell["model"]
            row.variant = {"schedule": cell["schedule"], "settings": retrain} if variant else {}
            rows[(*key, variant)] = row
        rows[(*key, variant)].results.append(r)
    _label(rows.values(), variants)
    return rows


def _label(rows: Iterable[Row], variants: dict[tuple, dict[Frozen, dict[str, Any]]]) -> None:
    """Name what differs between rows of the same table, model and pruned setting (``Row.settings_label``)."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.table, row.dataset, row.model, freeze(row.options), freeze(row.setting))].append(row)
    for group in groups.values():
        bases = list({freeze(row.settings): row.settings for row in group}.items())
        base_labels = dict(zip((b for b, _ in bases), labels([values for _, values in bases])))
        for row in group:
            parts = [base_labels[freeze(row.settings)]]
            if row.variant:
                retrain = variants[(_base_key(row.results[0], row.settings), row.variant["schedule"])]
                frozen = list(retrain)
                parts.append(labels(list(retrain.values()))[frozen.index(freeze(row.variant["settings"]))])
            row.settings_label = ", ".join(p for p in parts if p)


def _model_labels(rows: list[Row]) -> None:
    """``Row.model_label``: the model as its results label it (the architecture a family builds:
    ``torchvision.resnet18``), with the model options (e.g. VGG-19 ``head``) that differ between its rows in a
    table."""
    options: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    base = {id(row): row.model_label or row.model for row in rows}
    for row in rows:
        if row.options not in options[(row.table, row.dataset, base[id(row)])]:
            options[(row.table, row.dataset, base[id(row)])].append(row.options)
    for row in rows:
        variants = options[(row.table, row.dataset, base[id(row)])]
        differing = sorted({k for o in variants for k in o if any(o2.get(k) != o.get(k) for o2 in variants)})
        suffix = ", ".join(f"{k}={row.options.get(k)}" for k in differing)
        row.model_label = base[id(row)] + (f" ({suffix})" if suffix else "")


def _fill(row: Row, r: dict[str, Any], metric: str, notes: list[str], fallbacks: Counter) -> None:
    """Add the accuracies of run ``r`` to its row's cells (and its pruned fractions)."""
    cell = r["cell"]
    unpruned = meta.trains_unpruned(r)
    what = f"{row.dataset} {row.model_text}" + ("" if unpruned else f" {row.label}")
    value, fell_back = top1(r["accuracy"], metric)
    fallbacks[row.table] += fell_back
    if unpruned:
        _add(
            row.cells["unpruned"],
            cell["seed"],
            value,
            r["_file"],
            notes,
            f"{what} Unpruned",
            differences(r, PRETRAIN_SCOPE),
        )
        return
    column = cell["schedule"]
    title = f"{what} {column_title(column)}"
    _add(row.cells[column], cell["seed"], value, r["_file"], notes, title, differences(r, RETRAIN_SCOPE))
    pruned, _ = stage_accuracy(r, "prune")
    if pruned is not None and meta.role(column) == "finetuned":  # one pruned model per seed: its fine-tuned cell's
        _add(row.cells["pruned"], cell["seed"], pruned, r["_file"], notes, f"{what} {column_title('pruned')}")
    pretrain, fell_back = stage_accuracy(r, "pretrain", metric)
    if pretrain is not None:  # a sparsity-trained large model is not the Unpruned column (normal training)
        fallbacks[row.table] += fell_back
        column = "sparsity_trained" if stage_record(r, "pretrain").get("regularizer") else "unpruned"
        title = f"{what} {column_title(column)}"
        _add(row.cells[column], cell["seed"], pretrain, r["_file"], notes, title, differences(r, PRETRAIN_SCOPE))
    achieved = (r.get("pruning") or {}).get("achieved") or {}
    if isinstance(achieved.get("params_pruned_fraction"), (int, float)):
        row.params_pruned.append(100 * achieved["params_pruned_fraction"])
    if isinstance(achieved.get("flops_pruned_fraction"), (int, float)):
        row.flops_pruned.append(100 * achieved["flops_pruned_fraction"])


def _unpruned_from_baselines(rows: dict[tuple, Row], notes: dict[str, list[str]]) -> None:
    """Rows with no normally trained pretrain stage (predefined targets trained from scratch, or a sparsity-trained
    large model) take Unpruned from the ``schedule=baseline`` rows of the same model and settings — the one row whose
    data, model, SGD and trainer settings (and pretrain recipe, for a sparsity-trained row) are the row's; where
    several are, or none but others, a note says so and the column stays empty."""
    baselines: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows.values():
        if row.table == UNPRUNED_TABLE:
            baselines[(row.dataset, row.model, freeze(row.options))].append(row)
    for row in rows.values():
        if row.table == UNPRUNED_TABLE or row.cells.get("unpruned", Cell()).values:
            continue
        sparsity_trained = bool(row.cells.get("sparsity_trained", Cell()).values)
        candidates = baselines.get((row.dataset, row.model, freeze(row.options)), [])
        ours = shared_settings(row.settings, with_pretrain=sparsity_trained)
        theirs = [shared_settings(b.settings, with_pretrain=sparsity_trained) for b in candidates]
        same = [b for b, values in zip(candidates, theirs) if values == ours]
        what = f"{row.dataset} {row.model_text} {row.label}"
        if len(same) == 1:
            row.cells["unpruned"] = same[0].cells["unpruned"]
            row.unpruned_from_baseline = (
                "the row's large model was sparsity-trained"
                if sparsity_trained
                else "no pretrain stage in this row's runs"
            )
        elif same:
            differ = "; ".join(b.settings_label for b in same)
            notes[row.table].append(
                f"{what}: no Unpruned accuracy: the schedule=baseline runs of this model differ in settings ({differ}) "
                "and are not averaged; report one setting of them with this row"
            )
        elif candidates:
            differ = "; ".join(sorted(set(labels([ours, *theirs])[1:])))
            notes[row.table].append(
                f"{what}: no Unpruned accuracy: the schedule=baseline runs of this model were trained with other "
                f"settings ({differ}) than this row's"
            )
        elif sparsity_trained:
            notes[row.table].append(
                f"{row.dataset} {row.model_label or row.model}: no Unpruned accuracy (the large model was trained "
                "with the sparsity penalty); report a schedule=baseline sweep of the same model with it "
                "(the paper's: experiment=paper/unpruned_<dataset>)"
            )


def build_tables(results: list[dict[str, Any]], metric: str = "best") -> list[Table]:
    """Group results into the report's tables (see the module docstring); cells at ``metric`` (best | final)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    fallbacks: dict[str, int] = Counter()  # results without a best-epoch accuracy, per table
    notes: dict[str, list[str]] = defaultdict(list)
    meta.learn(results)
    results, dropped = deduplicate(results)
    for old, new in dropped:
        notes[_table_of(old)].append(
            f"{_what(old)} {old['cell']['schedule']}, seed {old['cell']['seed']}: {old['_file']} has the same settings "
            f"and seed as the newer {new['_file']}, which is used (each setting and seed counts once)"
        )
    rows = _rows(results)
    _model_labels(list(rows.values()))
    for row in rows.values():
        for r in row.results:
            _fill(row, r, metric, notes[row.table], fallbacks)
    _unpruned_from_baselines(rows, notes)
    by_table: dict[str, list[Row]] = defaultdict(list)
    for row in rows.values():
        by_table[row.table].append(row)
    recorded = recorded_pruners(results)
    first = pruner_table_order(recorded)
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
        columns = sorted(present, key=column_order)
        counts = Counter(len(cell.values) for row in table_rows for cell in row.cells.values() if cell.values)
        expected = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else 0
        title = table_title(name, recorded.get(name))
        tables.append(Table(name, title, columns, table_rows, expected, notes=notes[name], metric=metric))
    return tables
