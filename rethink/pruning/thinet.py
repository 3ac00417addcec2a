"""ThiNet (Luo et al., 2017; docs/protocol.md#thinet), ``pruner=thinet``: layer by layer, the channels whose summed
contribution to the next layer's output is smallest are removed greedily, then the kept channels of the next layer
are rescaled by least squares to reconstruct its output. Targets: ThiNet's published VGG-16 (``vgg_conv``,
``vgg_gap``, ``vgg_tiny``) and ResNet-50 (``resnet50_30/50/70``: only conv1 and conv2 of each bottleneck) models,
an L1-norm variant's widths, L1 ratios, or ``ratio``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.pruning.layerwise import LayerwisePruner, LayerwiseSettings
from rethink.pruning.published_targets import THINET
from rethink.pruning.reconstruction import Samples, relative_error
from rethink.pruning.registry import register
from rethink.settings.typed import NonNegativeInt, PositiveFloat


def greedy_removal(contributions: Tensor, count: int) -> list[int]:
    """ThiNet's greedy subset: ``count`` channels whose summed contributions (samples x channels) have the smallest
    squared norm, built one channel at a time."""
    running = torch.zeros(contributions.shape[0], dtype=contributions.dtype)
    available = torch.ones(contributions.shape[1], dtype=torch.bool)
    removed = []
    for _ in range(count):
        cost = ((running[:, None] + contributions) ** 2).sum(0).masked_fill(~available, float("inf"))
        channel = int(cost.argmin())
        removed.append(channel)
        available[channel] = False
        running += contributions[:, channel]
    return removed


@dataclass(frozen=True)
class ThiNetSettings(LayerwiseSettings):
    """ThiNet: a target, the positions sampled per layer, and an optional fine-tune after each layer (passes over the
    calibration batches; 0 = none, as the published targets were made)."""

    name: str = "thinet"
    finetune_epochs: NonNegativeInt = 0
    finetune_lr: PositiveFloat = 0.001


@register
class ThiNet(LayerwisePruner):
    """Greedy next-layer contribution selection and least-squares rescaling."""

    name = "thinet"
    title = "ThiNet (Luo et al., 2017)"
    table_order = 11
    settings_type = ThiNetSettings
    published = THINET

    def requested(self) -> dict[str, Any]:
        return {**super().requested(), "finetune_epochs": self.settings.finetune_epochs}

    def select(self, samples: Samples, keep: int, generator: torch.Generator) -> tuple[list[int], Tensor, dict]:
        count, channels, _ = samples.patches.shape
        outputs = torch.randint(samples.weight.shape[0], (count,), generator=generator)  # one output per sample
        contributions = (samples.patches * samples.weight[outputs]).sum(-1)
        removed = set(greedy_removal(contributions, channels - keep))
        kept = [c for c in range(channels) if c not in removed]
        total = contributions.sum(1)
        scale = torch.linalg.lstsq(contributions[:, kept], total[:, None]).solution[:, 0]
        weight = samples.weight.clone()
        weight[:, kept] *= scale[None, :, None]
        notes = {
            "error_kept": round(relative_error(total, contributions[:, kept].sum(1)), 6),
            "error_rescaled": round(relative_error(total, contributions[:, kept] @ scale), 6),
        }
        return kept, weight, notes

    def after_layer(self, network: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> None:
        if not self.settings.finetune_epochs:
            return
        optimizer = torch.optim.SGD(network.parameters(), lr=self.settings.finetune_lr, momentum=0.9)
        network.train()
        for _ in range(self.settings.finetune_epochs):
            for images, labels in batches:
                optimizer.zero_grad()
                F.cross_entropy(network(images), labels).backward()
                optimizer.step()
