"""Config-group options offered from code: a model or pruner registered in Python becomes selectable on the command
line (``model=<name>``, ``pruner=<name>``) through Hydra's ConfigStore, with no YAML file.

An option that already has a YAML file in ``conf/<group>/`` is not stored again: Hydra would otherwise merge the
stored node into the file as an implicit schema (a deprecated behaviour that warns).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def option_node(group: str, name: str) -> dict[str, Any] | None:
    """The node ``group=name`` composes to (its YAML file, or the option offered from code), unresolved; None when
    there is no such option."""
    path = CONF_DIR / group / f"{name}.yaml"
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[return-value]
    stored = ConfigStore.instance().repo.get(group, {}).get(f"{name}.yaml")
    return None if stored is None else OmegaConf.to_container(stored.node)  # type: ignore[return-value]


def offer_defaults(group: str, name: str, cls: type, make: Callable[[], Any]) -> None:
    """Offer ``group=name`` composing to the defaults of the settings ``make()`` builds, with ``_target_`` naming
    ``cls``; nothing when a setting has no default (the option then needs a YAML file giving it)."""
    try:
        defaults = dataclasses.asdict(make())
    except TypeError:  # a setting without default
        return
    offer_option(group, name, {"_target_": f"{cls.__module__}.{cls.__qualname__}", **defaults})


def offer_option(group: str, name: str, node: Mapping[str, Any]) -> None:
    """Make ``group=name`` compose to ``node`` unless ``conf/<group>/<name>.yaml`` defines that option."""
    if not (CONF_DIR / group / f"{name}.yaml").is_file():
        ConfigStore.instance().store(group=group, name=name, node=dict(node))
