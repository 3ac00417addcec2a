"""Random channel pruning, ``pruner=random``: the widths of an L1-norm target, with random channels kept (seeded by
the cell's seed) — the control of every comparison (docs/protocol.md#random)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rethink.pruning.criteria import keep_random
from rethink.pruning.l1 import L1, FilterTargetSettings
from rethink.pruning.registry import register


@dataclass(frozen=True)
class RandomSettings(FilterTargetSettings):
    name: str = "random"


@register
class Random(L1):
    """As :class:`~rethink.pruning.l1.L1`, but the kept channels are drawn uniformly at random."""

    name = "random"
    title = "Random channel pruning (control)"
    table_order = 20
    settings_type = RandomSettings

    def choose(self, scores: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
        return keep_random(scores.numel(), k, generator)
