"""The source cell of a guided pruner (:class:`rethink.pruning.registry.SourceCell`): this cell's settings with the
source's pruner and, where given, another model, data set or seed — composed the way Hydra composes ``model=<name>``
— so its pretrain and prune stages have the keys the same cell run on its own has, and are shared through the store.

Swapping the model or data set takes that option's own settings, plus those this cell changed from its option's
defaults that the new option also has (e.g. ``model.width_multiplier``, ``dataset.train_subset``), so a quick
variant's miniature carries over. Every other group (pretrain, optim, trainer, paths, ...) is this cell's.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from omegaconf import OmegaConf

from rethink.errors import UserError
from rethink.options import option_node
from rethink.pruning.registry import SourceCell
from rethink.settings.schema import Settings


def resolved_node(config: Mapping[str, Any], group: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` put at ``group`` of ``config`` and resolved there (its interpolations read the rest of it)."""
    whole = OmegaConf.create({**config, group: dict(node)})
    return OmegaConf.to_container(whole[group], resolve=True)  # type: ignore[return-value]


def _swapped(config: Mapping[str, Any], group: str, name: str) -> dict[str, Any]:
    """The ``group`` node of ``config`` as ``group=name`` gives it, keeping this cell's changes the option shares."""
    current = config[group]
    if current.get("name") == name:
        return dict(current)
    node = option_node(group, name)
    if node is None:
        raise UserError(f"the source cell's {group}={name!r} is not a {group} option; pick one of conf/{group}/.")
    defaults = option_node(group, str(current.get("name")))
    defaults = {} if defaults is None else resolved_node(config, group, defaults)
    changed = {k: v for k, v in current.items() if k in node and k != "name" and defaults.get(k, v) != v}
    return resolved_node(config, group, {**node, **changed})


def source_config(settings: Settings, source: SourceCell) -> dict[str, Any]:
    """The resolved config of ``source``, the cell whose decision guides the cell of ``settings``."""
    config = copy.deepcopy(dict(settings.resolved))
    for group, name in (("model", source.model), ("dataset", source.dataset)):
        if name is not None:
            config[group] = _swapped(config, group, name)
    node = option_node("pruner", str(source.pruner["name"]))
    if node is None:
        raise UserError(f"the source cell's pruner={source.pruner['name']!r} is not a registered pruner.")
    config["pruner"] = {**node, **source.pruner}
    if source.seed is not None:
        config["seed"] = source.seed
    return config


def describe(source: SourceCell, settings: Settings) -> str:
    """The source cell in words, e.g. ``pruner=slimming ratio=0.5 on vgg16 / cifar10, seed 1``."""
    pruner = " ".join(f"{k}={v}" for k, v in source.pruner.items() if k != "name")
    model = source.model or settings.model.name
    dataset = source.dataset or settings.dataset.name
    seed = settings.seed if source.seed is None else source.seed
    return f"pruner={source.pruner['name']} {pruner} on {model} / {dataset}, seed {seed}".replace("  ", " ")
