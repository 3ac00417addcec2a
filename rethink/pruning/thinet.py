"""ThiNet (Luo et al., 2017; docs/protocol.md#thinet), ``pruner=thinet``: layer by layer, the channels whose summed
contribution to the next layer's output is smallest are removed greedily, then the kept channels of the next layer
are rescaled by least squares to reconstruct its output. Targets: ThiNet's published VGG-16 (``vgg_conv``,
``vgg_gap``, ``vgg_tiny``) and ResNet-50 (``resnet50_30/50/70``: only conv1 and conv2 of each bottleneck) models,
an L1-norm variant's widths, L1 ratios, or ``ratio``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.pruning.context import PruneContext
from rethink.pruning.layerwise import LayerwisePruner, LayerwiseSettings
from rethink.pruning.published_targets import THINET
from rethink.pruning.reconstruction import AfterLayer, Rebuilt, relative_error
from rethink.pruning.registry import register
from rethink.pruning.sampling import Samples
from rethink.settings.typed import NonNegativeInt, PositiveFloat, PositiveInt


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
    """ThiNet: a target, how each layer is sampled, and ThiNet's fine-tune between layers: after each pruned layer
    (``finetune_after=layer``) or after the last pruned layer of each block (``block``: the module holding the
    layer, e.g. a bottleneck), SGD at ``finetune_lr`` on the training loader for ``finetune_epochs`` passes, at
    most ``finetune_steps`` steps (0 epochs: none, the default; the published ThiNet fine-tuned, see
    docs/protocol.md#thinet)."""

    name: str = "thinet"
    finetune_epochs: NonNegativeInt = 0
    finetune_lr: PositiveFloat = 0.001
    finetune_steps: PositiveInt | None = None
    finetune_after: Literal["layer", "block"] = "layer"
    added_later: ClassVar[tuple[str, ...]] = ("round_to", "positions_per_image", "finetune_steps", "finetune_after")


def _block_of(group: str) -> str:
    """The module holding a group's layer (``layer1.0.conv1`` -> ``layer1.0``)."""
    return group.rpartition(".")[0]


@register
class ThiNet(LayerwisePruner):
    """Greedy next-layer contribution selection and least-squares rescaling."""

    name = "thinet"
    title = "ThiNet (Luo et al., 2017)"
    table_order = 11
    settings_type = ThiNetSettings
    published = THINET

    def requested(self) -> dict[str, Any]:
        s = self.settings
        finetune = {k: getattr(s, k) for k in ("finetune_epochs", "finetune_steps", "finetune_after")}
        return {**super().requested(), **finetune}

    def procedure(self) -> str | None:
        s = self.settings
        if not s.finetune_epochs:
            return f"{super().procedure()}; no fine-tune between layers"
        steps = "" if s.finetune_steps is None else f" (at most {s.finetune_steps:,} steps)"
        return f"{super().procedure()}; fine-tuned after each {s.finetune_after} at {s.finetune_lr:g}, " + (
            f"{s.finetune_epochs} passes{steps}"
        )

    def select(self, samples: Samples, keep: int, generator: torch.Generator) -> Rebuilt:
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
            "samples": count,
            "error_kept": round(relative_error(total, contributions[:, kept].sum(1)), 6),
            "error_rescaled": round(relative_error(total, contributions[:, kept] @ scale), 6),
        }
        return Rebuilt(kept, weight, None, notes)

    def after_layer(self, context: PruneContext) -> AfterLayer | None:
        s = self.settings
        if not s.finetune_epochs:
            return None

        def finetune(network: nn.Module, group: str, following: str | None) -> None:
            if s.finetune_after == "block" and following is not None and _block_of(following) == _block_of(group):
                return  # the block has more layers to prune
            optimizer = torch.optim.SGD(network.parameters(), lr=s.finetune_lr, momentum=0.9)
            network.train()
            steps = 0
            for _ in range(s.finetune_epochs):
                for images, labels in context.training_batches():
                    optimizer.zero_grad()
                    F.cross_entropy(network(images), labels).backward()
                    optimizer.step()
                    steps += 1
                    if steps == s.finetune_steps:
                        return

        return finetune
