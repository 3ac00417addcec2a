"""The name of a pruned setting — ``A``, ``70%``, ``30% (scope=layer)`` — from what a run asked for: the rows of the
report's tables, the published numbers' keys and the W&B group of a cell all use it; ``slug`` makes file names.

What the results side needs to know of a pruner comes from the pruner registry (:mod:`rethink.pruning.registry`):
the report's tables (order and titles), the setting that names a pruned row, and whether it prunes weights (not
channels). A pruner this installation does not know gets the defaults.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from rethink.pruning import PRUNERS, Pruner, lookup

# ------------------------------------------------------------------------------------------- from the registry


def _registered(pruner: str) -> type[Pruner] | None:
    """The registered pruner ``pruner`` (None for a pruner this installation does not know, e.g. a user's)."""
    return lookup(pruner)


def pruner_setting_rule(pruner: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function from a pruner's requested settings to the setting that names its rows."""
    return (_registered(pruner) or Pruner).row_setting


def report_record(cls: type[Pruner]) -> dict[str, Any]:
    """What a report needs of a cell's pruner, recorded in its ``result.json`` (``options.pruner``), so that a report
    run without the user's package imported still titles and orders the pruner's table."""
    return {"name": cls.name, "title": cls.title or None, "table_order": cls.table_order}


def recorded_pruners(results: Iterable[dict[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Pruner name -> what its results recorded of it for a report (``options.pruner``; results of older versions
    have none)."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in results:
        record = (r.get("options") or {}).get("pruner")
        if isinstance(record, Mapping):
            out.setdefault(r["cell"]["pruner"], record)
    return out


def pruner_table_order(recorded: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, ...]:
    """The pruners whose tables come first in a report, in that order: the registered ones and those ``recorded``
    (name -> :func:`report_record`) by their ``table_order`` (other pruners follow, sorted by name)."""
    orders = {name: cls.table_order for name, cls in PRUNERS.items() if cls.prunes}
    for name, record in (recorded or {}).items():
        if name not in PRUNERS and isinstance(record.get("table_order"), int):
            orders[name] = record["table_order"]
    return tuple(name for _, name in sorted((order, name) for name, order in orders.items()))


def pruner_table_title(pruner: str, recorded: Mapping[str, Any] | None = None) -> str:
    """The title of a pruner's table: its method (the registry's, else the one its results recorded), or
    ``Pruner NAME`` for one without a title."""
    cls = _registered(pruner)
    if cls is not None and cls.title:
        return cls.title
    title = (recorded or {}).get("title")
    return title if isinstance(title, str) and title else f"Pruner {pruner}"


def prunes_weights(pruner: str) -> bool:
    """Whether ``pruner`` zeroes weights (a per-layer sparsity) rather than removing channels (per-layer widths)."""
    cls = _registered(pruner)
    return cls is not None and cls.prunes_weights


def prunes(pruner: str) -> bool:
    """Whether ``pruner`` prunes at all (``pruner=none`` does not)."""
    cls = _registered(pruner)
    return cls is None or cls.prunes


# ------------------------------------------------------------------------------------------------ settings


def requested_settings(result: dict[str, Any]) -> dict[str, Any]:
    """The pruner settings a run asked for (``pruning.requested``, else the config's pruner group)."""
    pruning = result.get("pruning") or {}
    if isinstance(pruning.get("requested"), dict):
        return pruning["requested"]
    pruner = ((result.get("config") or {}).get("pruner")) or {}
    return {k: v for k, v in pruner.items() if k not in ("name", "_target_")}


def pruned_setting(result: dict[str, Any]) -> dict[str, Any]:
    """The setting that names a row (and keys the published numbers): ``{"variant": "A"}``, ``{"ratio": 0.7}``, ...
    Settings that are not the paper's (custom ratios, a non-global magnitude scope) are kept so rows never merge."""
    return row_setting(pruner_setting_rule(result["cell"]["pruner"]), requested_settings(result))


def row_setting(rule: Callable[[dict[str, Any]], dict[str, Any]], requested: dict[str, Any]) -> dict[str, Any]:
    """``rule(requested)`` (a pruner's row naming) with ``round_to`` when widths were aligned, so an aligned row never
    merges with the exact one (``A (round_to=16)``)."""
    aligned = {"round_to": requested["round_to"]} if requested.get("round_to") else {}
    return {**rule(requested), **aligned}


def setting_label(setting: dict[str, Any]) -> str:
    """``A``, ``70%``, ``30% (scope=layer)``: the "pruned" column of a row."""
    if not setting:
        return "-"
    parts, extra = [], []
    for name, value in setting.items():
        if name == "variant":
            parts.append(str(value))
        elif name == "ratio" and isinstance(value, (int, float)):
            parts.append(f"{100 * value:g}%")
        else:
            extra.append(f"{name}={value}")
    if not parts:
        return ", ".join(extra)
    return " ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def cell_group(cell: dict[str, Any], pruner: dict[str, Any]) -> str:
    """``cifar10/resnet56/l1 A/scratch_b``: one cell of a paper table (its seeds are the runs of the group), from the
    cell and its pruner config."""
    if not prunes(cell["pruner"]):
        return f"{cell['dataset']}/{cell['model']}/none/{cell['schedule']}"
    label = setting_label(pruned_setting({"cell": cell, "config": {"pruner": pruner}}))
    return f"{cell['dataset']}/{cell['model']}/{cell['pruner']} {label}/{cell['schedule']}"


def slug(text: str) -> str:
    """``l1_cifar10_vgg16_A``: ``text`` as a file name (letters, digits, ``-_.``; anything else as one ``_``)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return "_".join(filter(None, keep.split("_")))
