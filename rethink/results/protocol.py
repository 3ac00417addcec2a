"""Like for like: what in a run's settings differs from the protocol behind the paper's number for its cell.

The paper's protocol is data (``published.json`` ``protocol``): per data set the settings every published number was
measured with (full data, full width, batch, epochs, learning rates, SGD), and the method-specific overrides (ImageNet
slimming fine-tunes 5 epochs, SSS trains 100, the no-BN VGG-16 lr 0.01, ...). :func:`differences` compares a
``result.json``'s recorded config with it. The report shows the paper's number and the difference only for cells
without differences; the others get a footnote naming what differs. A value a result does not record is not compared.
"""

from __future__ import annotations

import math
from typing import Any

from rethink.results import meta
from rethink.results.published import load

PRETRAIN_SCOPE = "pretrain"  # the Unpruned column: the large model's training only
RETRAIN_SCOPE = "retrain"  # a retraining column: also the schedule's recipe
_MISSING = object()  # a setting the result does not record


def paper_protocol(dataset: str, model: str, pruner: str) -> dict[str, Any] | None:
    """The settings the paper's numbers for (dataset, model, pruner) were measured with; None for other data sets."""
    protocol = load()["protocol"]
    if dataset not in protocol["datasets"]:
        return None
    values = dict(protocol["datasets"][dataset])
    for override in protocol["overrides"]:
        where = {k: override[k] for k in ("dataset", "model", "pruner") if k in override}
        if where.get("dataset", dataset) == dataset and where.get("model", model) == model:
            if where.get("pruner", pruner) == pruner:
                values.update({k: v for k, v in override.items() if k not in where and k != "why"})
    return values


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(ours: Any, paper: Any) -> bool:
    if isinstance(ours, (int, float)) and isinstance(paper, (int, float)) and not isinstance(ours, bool):
        return math.isclose(float(ours), float(paper), rel_tol=1e-9)
    return ours == paper


def _checks(protocol: dict[str, Any], schedule: str, scope: str) -> list[tuple[str, Any]]:
    """(config path, the paper's value) pairs a result of ``schedule`` is compared on. The scratch schedules' lr is
    the large model's (checked) unless set apart, and a changed one gets its own report column."""
    checks = [
        ("dataset.train_subset", None),
        ("dataset.test_subset", None),
        ("dataset.batch_size", protocol["batch_size"]),
        ("model.width_multiplier", 1.0),
        ("trainer.limit_train_batches", 1.0),
        ("trainer.limit_val_batches", 1.0),
        ("optim.momentum", protocol["momentum"]),
        ("optim.weight_decay", protocol["weight_decay"]),
        ("pretrain.epochs", protocol["pretrain_epochs"]),
        ("pretrain.lr", protocol["pretrain_lr"]),
    ]
    if scope == PRETRAIN_SCOPE or meta.role(schedule) == "unpruned":
        return checks
    # the schedule's own (Schedule.protocol): a protocol key, or None for a setting that must be unset (Scratch-B's
    # epochs come from its rule, not fixed by hand)
    for path, name in meta.protocol_checks(schedule):
        if name is None or name in protocol:
            checks.append((path, None if name is None else protocol[name]))
    return checks


def differences(result: dict[str, Any], scope: str = RETRAIN_SCOPE) -> list[str]:
    """What in ``result``'s settings differs from the paper's protocol for its cell, as ``setting=ours (paper:
    theirs)``; [] when nothing recorded differs (or the data set has no published protocol).

    ``scope``: :data:`RETRAIN_SCOPE` for a retraining column, :data:`PRETRAIN_SCOPE` for the Unpruned column (the
    large model only). Imported large-model weights (``pretrain.weights``) are not compared on pretrain epochs/lr."""
    cell, config = result.get("cell") or {}, result.get("config") or {}
    protocol = paper_protocol(cell.get("dataset", ""), cell.get("model", ""), cell.get("pruner", ""))
    if protocol is None:
        return []
    imported = _get(config, "pretrain.weights") not in (None, _MISSING)
    found = []
    for path, paper in _checks(protocol, cell.get("schedule", ""), scope):
        if imported and path.startswith("pretrain."):
            continue
        ours = _get(config, path)
        if ours is _MISSING or _same(ours, paper):
            continue
        found.append(f"{path}={_text(ours)} (paper: {_text(paper, path)})")
    return found


def _text(value: Any, path: str = "") -> str:
    if value is None:
        return "all images" if path.endswith("_subset") else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
