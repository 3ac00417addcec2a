"""Config-group options offered from code: a model or pruner registered in Python becomes selectable on the command
line (``model=<name>``, ``pruner=<name>``) through Hydra's ConfigStore, with no YAML file.

An option that already has a YAML file in ``conf/<group>/`` is not stored again: Hydra would otherwise merge the
stored node into the file as an implicit schema (a deprecated behaviour that warns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hydra.core.config_store import ConfigStore

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def offer_option(group: str, name: str, node: Mapping[str, Any]) -> None:
    """Make ``group=name`` compose to ``node`` unless ``conf/<group>/<name>.yaml`` defines that option."""
    if not (CONF_DIR / group / f"{name}.yaml").is_file():
        ConfigStore.instance().store(group=group, name=name, node=dict(node))
