"""What makes two results comparable: their settings apart from the seed (``settings`` in result.json, the values the
stage keys hash, :func:`rethink.pipeline.keys.cell_settings`). The report averages only results whose settings are
identical; results that differ in anything else are separate rows, labelled by what differs (:func:`labels`). Two
results of the same settings and seed count once, the newest (:func:`deduplicate`).

Results written before ``settings`` was recorded get them from their config (the groups the keys hash).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rethink.results import meta
from rethink.settings.not_hashed import NOT_HASHED

RETRAIN_GROUPS = ("schedule", "imp", "retrain")  # a cell's retraining, after its pruned model (keys.cell_settings)
CONFIG_GROUPS = ("dataset", "model", "optim", "trainer", "pretrain", "pruner", "calibration", "schedule")
SHARED_GROUPS = ("dataset", "model", "optim", "trainer", "batch")  # rethink.pipeline.keys.shared
OPTIM_FIELDS = ("momentum", "weight_decay", "nesterov", "lr_gamma")  # copied into each stage's recipe
Frozen = tuple[tuple[str, str], ...]


def settings_of(result: dict[str, Any]) -> dict[str, Any]:
    """The result's flat settings without the seed: recorded ``settings.values``, else rebuilt from its config."""
    recorded = result.get("settings")
    if isinstance(recorded, dict) and isinstance(recorded.get("values"), dict):
        return recorded["values"]
    config = result.get("config") or {}
    baseline = meta.trains_unpruned(result)
    flat = {}
    for group in CONFIG_GROUPS:
        if baseline and group in ("pruner", "calibration", "schedule"):
            continue
        values = config.get(group)
        if isinstance(values, dict):
            flat |= {f"{group}.{k}": v for k, v in values.items() if f"{group}.{k}" not in NOT_HASHED}
    return flat


def shared_settings(values: dict[str, Any], with_pretrain: bool = False) -> dict[str, Any]:
    """The settings every stage of a cell shares (data, model, SGD, trainer), and its pretrain recipe if asked."""
    groups = SHARED_GROUPS + (("pretrain",) if with_pretrain else ())
    return {k: v for k, v in values.items() if k.partition(".")[0] in groups}


def freeze(values: dict[str, Any]) -> Frozen:
    """``values`` as a hashable, order-free key."""
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in values.items()))


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the pruned model depends on, the retraining's own settings: ``schedule.*``, ``imp.*``, ``retrain.*``)."""
    retrain = {k: v for k, v in values.items() if k.partition(".")[0] in RETRAIN_GROUPS}
    return {k: v for k, v in values.items() if k not in retrain}, retrain


def group_split(values: dict[str, Any], group: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the settings not of ``group``, those of ``group``)."""
    ours = {k: v for k, v in values.items() if k.partition(".")[0] == group}
    return {k: v for k, v in values.items() if k not in ours}, ours


def _differing(variants: Sequence[dict[str, Any]]) -> list[str]:
    """The settings whose values differ between those of ``variants`` that have them, without those implied by
    another that differs (a recipe's copy of ``optim.*``, milestones of other epochs, the retrain recipe of another
    schedule)."""
    keys = sorted({k for v in variants for k in v})
    differ = [k for k in keys if len({json.dumps(v[k], sort_keys=True) for v in variants if k in v}) > 1]
    implied = set()
    for key in differ:
        group, _, name = key.partition(".")
        if name in OPTIM_FIELDS and f"optim.{name}" in differ and group != "optim":
            implied.add(key)
        if name == "milestones" and f"{group}.epochs" in differ:
            implied.add(key)
        if group == "retrain" and any(k.startswith("schedule.") for k in differ):
            implied.add(key)
    return [k for k in differ if k not in implied] or differ


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else str(value)


def labels(variants: Sequence[dict[str, Any]]) -> list[str]:
    """A label per variant naming what differs among them (``pretrain.epochs=5, pretrain.lr=0.1``; ``without
    pretrain`` for one that has no setting of a group others have); "" for all when there is only one."""
    if len(variants) < 2:
        return [""] * len(variants)
    differ = _differing(variants)
    groups = {k.partition(".")[0] for v in variants for k in v}
    out = []
    for v in variants:
        present = {k.partition(".")[0] for k in v}
        parts = [f"{k}={_text(v[k])}" for k in differ if k in v]
        parts += [f"without {g}" for g in sorted(groups - present)]
        out.append(", ".join(parts) or ", ".join(f"{k}={_text(x)}" for k, x in sorted(v.items())))
    return out


def _age(result: dict[str, Any]) -> float:
    try:
        return Path(result["_file"]).stat().st_mtime
    except (KeyError, OSError):
        return float("-inf")


def deduplicate(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict, dict]]]:
    """The results with one per (cell, requested pruning, settings, seed): the newest file of each; and each one
    left out beside the newer one used instead."""
    newest: dict[tuple, dict[str, Any]] = {}
    dropped = []
    for result in sorted(results, key=_age, reverse=True):
        cell = result["cell"]
        requested = json.dumps((result.get("pruning") or {}).get("requested"), sort_keys=True)
        key = (cell["dataset"], cell["model"], cell["pruner"], cell["schedule"], cell["seed"], requested)
        key += (freeze(settings_of(result)),)
        if key in newest:
            dropped.append((result, newest[key]))
        else:
            newest[key] = result
    kept = {id(r) for r in newest.values()}
    return [r for r in results if id(r) in kept], dropped
