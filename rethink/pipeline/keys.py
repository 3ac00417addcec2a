"""Stage keys: a stage's artifact directory is named by a hash of everything that can change what it computes.

Every setting of the groups a stage depends on is hashed by default (data set, model, SGD, Lightning's trainer
arguments — including ones added with ``+trainer.*`` — the seed, the stage's recipe, the pruner's settings, the
upstream stage's key), so a new setting can never make a stage reuse an artifact computed without it. Only the
settings in :data:`NOT_HASHED` are left out, each known not to change results; groups that never change a model
(``paths``, ``logger``, ``launch`` — the device a job is pinned to —, ``progress_bar``, ``verbose``, ``dry_run``) are
not hashed at all, nor is ``speed`` (memory format and compilation change results by float rounding only, like the
device a stage runs on; ``tests/test_speed.py`` checks it), and ``calibration`` only in the prune key of a pruner that
reads calibration data. ``tests/test_keys.py`` pins the keys of reference cells: a change that moves them must update
the pinned values in the same commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any, Mapping

from rethink.distributed import planned_world_size
from rethink.settings.not_hashed import NOT_HASHED
from rethink.settings.schema import FRESH

if TYPE_CHECKING:
    from rethink.arch.spec import ArchSpec
    from rethink.pipeline.plan import CellPlan, StagePlan

KEY_SCHEME = 2  # 1: rethink <= 0.1 (hashed an allowlist of trainer settings); bump when key contents change meaning


def content_key(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable payload (with the key scheme)."""
    text = json.dumps({"key_scheme": KEY_SCHEME, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hashed(group: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``group`` that enter a key: all of them but those in :data:`NOT_HASHED`."""
    return {k: v for k, v in values.items() if f"{group}.{k}" not in NOT_HASHED}


def shared(plan: "CellPlan") -> dict[str, Any]:
    """What every stage of a cell depends on: the data, the model's options, SGD, the trainer and the seed."""
    s = plan.settings
    values = {
        "dataset": hashed("dataset", dataclasses.asdict(s.dataset)),
        "model": {"name": s.model.name, **s.model.options},
        "optim": dataclasses.asdict(s.optim),
        "trainer": hashed("trainer", s.trainer.arguments),
        "seed": s.seed,
    }
    if planned_world_size(s.trainer.arguments) != 1:  # multi-process: batch_size is now global (was per rank)
        values["batch"] = "global"
    return values


def pretrain_key(plan: "CellPlan", weights_sha256: str | None = None) -> str:
    """The large model: its spec, recipe (or the content of imported weights) and any pruner penalty."""
    stage = plan.stages[0]
    origin: dict[str, Any] = (
        {"weights_sha256": weights_sha256} if weights_sha256 else {"recipe": dataclasses.asdict(stage.recipe)}
    )
    if plan.pruner.requirements().regularizer and not weights_sha256:
        origin["regularizer"] = plan.pruner.regularizer(plan.large)
    return content_key({"stage": "pretrain", "spec": plan.large.to_dict(), **origin, **shared(plan)})


def prune_key(plan: "CellPlan", source_key: str, round_index: int, guide: str | None = None) -> str:
    """A decision on the weights of stage ``source_key``: the pruner's settings (and calibration when it reads
    data); round ``round_index`` of iterative pruning; ``guide``: the source cell's prune key, when its decision
    guides this one (transferred guided sparsification)."""
    payload: dict[str, Any] = {
        "stage": "prune",
        "source": source_key,
        "pruner": plan.settings.pruner.key_values(),
    }
    if guide is not None:
        payload["guide"] = guide
    if round_index > 1:
        payload["round"] = round_index
    if plan.pruner.requirements().calibration:
        payload["calibration"] = plan.settings.calibration.key_values()
    return content_key(payload)


def round_key(plan: "CellPlan", prune: str, stage: "StagePlan") -> str:
    """A round of iterative pruning: the original initialisation under decision ``prune``, retrained."""
    recipe = dataclasses.asdict(stage.recipe)
    return content_key({"stage": "imp", "prune": prune, "recipe": recipe, **shared(plan)})


def retrain_key(plan: "CellPlan", stage: "StagePlan", prune: str | None, target: "ArchSpec") -> str:
    """The retraining: from the prune decision ``prune`` (inherited weights, lottery init, weight masks) or, for a
    fresh initialisation of a structured architecture, from the ``target`` spec alone; the schedule and recipe."""
    upstream: dict[str, Any] = {"target": target.to_dict()} if stage.init == FRESH else {}
    if prune is not None and (stage.init != FRESH or plan.sparse is not None):
        upstream["prune"] = prune
    return content_key(
        {
            "stage": "retrain",
            **upstream,
            "init": stage.init,
            "recipe": dataclasses.asdict(stage.recipe),
            "schedule": dataclasses.asdict(plan.settings.schedule),
            **shared(plan),
        }
    )


def cell_settings(plan: "CellPlan", weights_sha256: str | None = None) -> dict[str, Any]:
    """Everything the cell's stage keys hash but the seed, flat (``pretrain.epochs``, ``schedule.lr``, ...): two
    cells with the same settings differ only by seed, so the report may average them (``settings`` in result.json).
    The recipes are the resolved ones (``pretrain.*``, ``imp.*``, ``retrain.*``); ``pruner.*`` and ``calibration.*``
    enter when the cell prunes (calibration: when its pruner reads data; ``pruner.*`` also fixes a sparsity penalty of
    the pretrain stage), ``schedule.*`` when it retrains."""
    groups = {k: v for k, v in shared(plan).items() if k != "seed"}
    first = plan.stages[0]
    if first.name == "pretrain":
        groups["pretrain"] = {"weights_sha256": weights_sha256} if weights_sha256 else dataclasses.asdict(first.recipe)
    if plan.pruner.prunes:
        groups["pruner"] = plan.settings.pruner.key_values()
        if plan.pruner.requirements().calibration:
            groups["calibration"] = plan.settings.calibration.key_values()
    rounds = [dataclasses.asdict(stage.recipe) for stage in plan.stages if stage.name == "imp"]
    if rounds:
        groups["imp"] = {"rounds": len(rounds), **rounds[0]}
    if plan.retrain.name == "retrain":
        groups["schedule"] = dataclasses.asdict(plan.settings.schedule)
        groups["retrain"] = dataclasses.asdict(plan.retrain.recipe)
    flat: dict[str, Any] = {}
    for group, values in groups.items():
        if isinstance(values, Mapping):
            flat |= {f"{group}.{k}": v for k, v in values.items()}
        else:
            flat[group] = values
    return flat


def settings_record(plan: "CellPlan", weights_sha256: str | None = None) -> dict[str, Any]:
    """``settings`` of result.json: the flat settings of :func:`cell_settings` and their hash (``key``)."""
    values = cell_settings(plan, weights_sha256)
    return {"key": content_key({"settings": values}), "values": values}
