"""Guided sparsification (the paper's Sec. 5, docs/protocol.md#guided), ``pruner=guided_sparsity``: the unstructured
analogue of guided pruning. A global magnitude decision at ``ratio`` (as ``pruner=magnitude``) on the trained model
is reduced to one sparsity per stage — the mean sparsity of the stage's 3x3 convs — and every 3x3 conv of the stage
is then pruned to exactly that sparsity by its own weight magnitudes (``int(n * sparsity)`` of its ``n`` weights, so
each layer is within one weight of its stage's sparsity). Convs with other kernels (1x1, ImageNet's 7x7 stem) keep
the sparsity the global decision gave them. Trained from scratch, as the paper does (schedule=scratch_e /
scratch_b); the masks keep the pruned weights at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from rethink.arch import model_info
from rethink.arch.stages import feature_map_sizes
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.masks import apply_masks, is_3x3, layer_masks, magnitude_masks, stage_kept_weights
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, register
from rethink.settings.typed import Ratio


@dataclass(frozen=True)
class GuidedSparsitySettings(PrunerSettings):
    """``ratio``: the fraction of conv weights the guiding global magnitude decision removes."""

    name: str = "guided_sparsity"
    ratio: Ratio = 0.5


def guided_layer_ratios(model: nn.Module, masks: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, float]:
    """Per conv: its stage's mean 3x3 sparsity under ``masks`` for a 3x3 conv, else its own sparsity there."""
    stage_kept = stage_kept_weights(masks, sizes)
    return {
        name: 1 - stage_kept[sizes[name]] if is_3x3(mask) and name in sizes else 1 - float(mask.float().mean())
        for name, mask in masks.items()
    }


def guided_sparsity_masks(context: PruneContext, ratio: float) -> tuple[dict[str, Any], dict[int, float]]:
    """Guided sparsification's keep-masks of the context's trained model at ``ratio`` (not applied), and the kept
    fraction of each stage's 3x3 weights (feature-map size -> fraction) under the guiding global decision."""
    model = context.model
    sizes = feature_map_sizes(context.spec, model_info(context.model_name).input_size)
    guide = magnitude_masks(model, ratio, "global")
    return layer_masks(model, guided_layer_ratios(model, guide, sizes)), stage_kept_weights(guide, sizes)


@register
class GuidedSparsity(Pruner):
    """Per-layer magnitude masks at the per-stage 3x3 sparsity of a global magnitude decision."""

    name = "guided_sparsity"
    title = "Guided sparsification (stage sparsity of global magnitude pruning, Sec. 5)"
    table_order = 65
    prunes_weights = True
    settings_type = GuidedSparsitySettings
    needs = Needs(trained_model=True)

    def decide(self, context: PruneContext) -> Decision:
        masks, stages = guided_sparsity_masks(context, self.settings.ratio)
        apply_masks(context.model, masks)
        notes = {"guide_stage_sparsity": {str(size): round(1 - kept, 6) for size, kept in stages.items()}}
        return Decision(context.spec, context.model.state_dict(), {}, masks, notes)

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """A point at its guiding ratio's level, matched to itself: ``pruner=uniform_sparsity`` at the same ratio is
        its uniform control."""
        return Curve("weights", "guided", float(requested["ratio"]), "guided")
