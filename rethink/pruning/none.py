"""``pruner=none``: the cell trains the unpruned model only (``schedule=baseline``)."""

from __future__ import annotations

from dataclasses import dataclass

from rethink.pruning.registry import Needs, Pruner, PrunerSettings, register


@dataclass(frozen=True)
class NoPruningSettings(PrunerSettings):
    name: str = "none"


@register
class NoPruning(Pruner):
    """Keeps everything: the cell is the large model's training alone."""

    name = "none"
    title = "Unpruned models"
    settings_type = NoPruningSettings
    needs = Needs(trained_model=False)
    prunes = False
