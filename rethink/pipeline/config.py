"""The door: a composed Hydra config becomes :class:`Settings` — typed, frozen, validated once — or one
:class:`UserError` naming the bad key.

Each group is parsed with the schema of its selected option — a registered class, found by ``name`` or imported by
``_target_`` (:mod:`rethink.kinds`): the data set's (:mod:`rethink.data.registry`), the pruner's own, the schedule's
(:mod:`rethink.pipeline.schedules`), the task's (:mod:`rethink.settings.tasks`) — and the fixed groups of
:mod:`rethink.settings.schema`. A key no schema knows —
also one added with ``+`` — a wrong type or a value out of range stops here, before any data is loaded.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Literal, Mapping

from omegaconf import DictConfig, OmegaConf

from rethink import plugins
from rethink.data.registry import DATASETS
from rethink.errors import UserError
from rethink.kinds import Kinds, import_target, node_without_target
from rethink.pipeline.schedules import SCHEDULES
from rethink.pruning.alignment import AUTO, device_alignment
from rethink.pruning.registry import pruner_class
from rethink.settings.schema import (
    CalibrationSettings,
    LaunchSettings,
    LoggerSettings,
    ModelSettings,
    OptimSettings,
    PathsSettings,
    PretrainSettings,
    Settings,
    SpeedSettings,
    TaskSettings,
    TrainerSettings,
)
from rethink.settings.tasks import TASK_KINDS
from rethink.settings.typed import NonNegativeInt, coerce, parse

GROUPS = ("dataset", "model", "pruner", "schedule", "pretrain", "optim", "calibration", "trainer", "logger", "paths")
GROUPS += ("task", "speed", "launch")
SCALARS: dict[str, Any] = {
    "seed": NonNegativeInt,
    "progress_bar": Literal["auto", "rich", "tqdm", "lines"],
    "dry_run": Literal[False, True, "json"],
    "verbose": bool,
    "plugins": tuple[str, ...],
}


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except Exception as exc:  # omegaconf raises several error types for bad interpolations and missing values
        raise UserError(f"the config cannot be resolved: {exc}".replace("\n", " ")) from None


def _group(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    node = config.get(name)
    if not isinstance(node, Mapping):
        raise UserError(f"{name}: expected a group of settings (e.g. {name}=<option>), got {node!r}.")
    return dict(node)


def _option(node: Mapping[str, Any], group: str) -> str:
    name = node.get("name")
    if not isinstance(name, str):
        raise UserError(f"{group}.name={name!r}: every {group} option names itself; pick one with {group}=<name>.")
    return name


def _kind(node: Mapping[str, Any], group: str, kinds: Kinds) -> Any:
    """The registered class a group's node selects (by ``name``, or imported by ``_target_``)."""
    if "_target_" not in node:
        _option(node, group)
    return kinds.select(node)


def _selected(node: Mapping[str, Any], group: str, cls: type, name: str) -> Any:
    """``node`` parsed by the class its option selected (``name``: the class's option name)."""
    return parse(cls, node_without_target(node, name), group, f"{group}={name}")


def _task(node: Mapping[str, Any]) -> TaskSettings:
    cls = _kind(node, "task", TASK_KINDS)
    return _selected(node, "task", cls, TASK_KINDS.name_of(cls))


def load_settings(cfg: DictConfig | Mapping[str, Any]) -> Settings:
    """The validated, immutable settings of a composed config."""
    config = _resolved(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    unknown = sorted(set(config) - set(GROUPS) - set(SCALARS))
    if unknown:
        raise UserError(
            f"{unknown[0]}: no such setting; the settings are the groups {', '.join(GROUPS)} and {', '.join(SCALARS)}."
        )
    plugins.load([*plugins.requested([]), *coerce(config.get("plugins", ()), SCALARS["plugins"], "plugins")])
    dataset_node = _group(config, "dataset")
    dataset_type = _kind(dataset_node, "dataset", DATASETS)
    dataset = parse(dataset_type, node_without_target(dataset_node, dataset_type.option_name), "dataset")
    model_node = _group(config, "model")
    if "_target_" in model_node:  # the family's module (or a function in it): importing it registers the model
        import_target(str(model_node["_target_"]), "model", "a module or function path")
    model = ModelSettings(
        _option(model_node, "model"),
        MappingProxyType({k: v for k, v in model_node.items() if k not in ("name", "_target_")}),
    )
    pruner_node = _group(config, "pruner")
    pruner_type = pruner_class(pruner_node)
    pruner = _selected(pruner_node, "pruner", pruner_type.settings_type, pruner_type.name)
    schedule_node = _group(config, "schedule")
    schedule_type = _kind(schedule_node, "schedule", SCHEDULES)
    schedule = _selected(schedule_node, "schedule", schedule_type, SCHEDULES.name_of(schedule_type))
    scalars = {key: coerce(config[key], kind, key) for key, kind in SCALARS.items() if key in config}
    trainer = TrainerSettings.parse(_group(config, "trainer"))
    if getattr(pruner, "round_to", None) == AUTO:  # the device's alignment: the stage keys hash the number
        pruner = dataclasses.replace(pruner, round_to=device_alignment(trainer.arguments)[0])
    return Settings(
        dataset=dataset,
        model=model,
        pruner=pruner,
        schedule=schedule,
        pretrain=parse(PretrainSettings, _group(config, "pretrain"), "pretrain"),
        optim=parse(OptimSettings, _group(config, "optim"), "optim"),
        calibration=parse(CalibrationSettings, config.get("calibration") or {}, "calibration"),
        trainer=trainer,
        logger=parse(LoggerSettings, _group(config, "logger"), "logger"),
        paths=parse(PathsSettings, _group(config, "paths"), "paths"),
        task=_task(config.get("task") or {"name": "classification"}),
        speed=parse(SpeedSettings, config.get("speed") or {}, "speed"),
        launch=parse(LaunchSettings, config.get("launch") or {}, "launch"),
        resolved=MappingProxyType(config),
        **scalars,
    )
