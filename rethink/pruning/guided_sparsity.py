"""Guided sparsification (the paper's Sec. 5, docs/protocol.md#guided), ``pruner=guided_sparsity``: the unstructured
analogue of guided pruning. A global magnitude decision at ``ratio`` (as ``pruner=magnitude``) is reduced to one
sparsity per stage (layers with the same feature-map size) — the pooled fraction of the stage's 3x3 conv weights it
removes — and every 3x3 conv of the stage of this cell's trained model is then pruned to exactly that sparsity by its
own weight magnitudes (``int(n * sparsity)`` of its ``n`` weights, so each layer is within one weight of its stage's
sparsity). Convs with other kernels (1x1, ImageNet's 7x7 stem) keep the sparsity this model's global decision gives
them. Trained from scratch, as the paper does (schedule=scratch_e / scratch_b); the masks keep the pruned weights at
zero.

The guiding decision is made on this trained model, or with ``source.model`` / ``source.dataset`` / ``source.seed``
set, by the source cell (``pruner=magnitude scope=global`` at ``ratio`` there, shared through the store): that is
**transferred guided sparsification** (the paper: VGG-16 on CIFAR-10 guiding VGG-19 on CIFAR-100), where stages are
matched by feature-map size and the two models' 3x3 convs must have the same stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from rethink.arch import build, model_info
from rethink.arch.spec import ArchSpec
from rethink.arch.stages import feature_map_sizes
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.guided import Guided, GuidingCell, guided_match, guided_role
from rethink.pruning.masks import apply_masks, is_3x3, layer_masks, magnitude_masks, stage_kept_weights
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, SourceCell, SourceModels, register
from rethink.settings.typed import Ratio


@dataclass(frozen=True)
class GuidedSparsitySettings(PrunerSettings):
    """``ratio``: the fraction of conv weights the guiding global magnitude decision removes, made on this trained
    model or in the ``source`` cell (``pruner=guided``'s :class:`GuidingCell`)."""

    name: str = "guided_sparsity"
    ratio: Ratio = 0.5
    source: GuidingCell = field(default_factory=GuidingCell)
    added_later: ClassVar[tuple[str, ...]] = ("source",)
    revision: ClassVar[int] = 1  # 1: the stage statistic is the pooled 3x3 sparsity (was the mean of layers')


def guiding_cell(ratio: float, source: GuidingCell) -> SourceCell | None:
    """The source cell of guided sparsification at ``ratio`` guided by ``source`` (global magnitude pruning there),
    or None when this cell guides itself (``source`` unset)."""
    if source == GuidingCell():
        return None
    pruner = {"name": "magnitude", "scope": "global", "ratio": ratio}
    return SourceCell(pruner, source.model, source.dataset, source.seed)


def conv3x3_stages(spec: ArchSpec, input_size: int) -> list[int]:
    """The feature-map sizes of ``spec``'s 3x3 convs (its stages for guided sparsification), largest first."""
    sizes = feature_map_sizes(spec, input_size)
    with torch.device("meta"):
        model = build(spec)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    return sorted({sizes[name] for name in convs}, reverse=True)


def check_sparsity_stages(large: ArchSpec, input_size: int, source: SourceModels, models: tuple[str, str]) -> None:
    """Raise ValueError unless the source model's 3x3 convs have ``large``'s stages (``models``: this model's name
    and the source's, for the message)."""
    ours, theirs = conv3x3_stages(large, input_size), conv3x3_stages(source.large, source.input_size)
    if ours != theirs:
        raise ValueError(
            f"guided sparsification transfers one sparsity per stage (feature-map size) of the 3x3 convs, but the "
            f"source model '{models[1]}' has them at sizes {theirs} and this model '{models[0]}' at {ours}, so its "
            "stage sparsities cannot be transferred; pick a source model with the same stages (e.g. vgg16 for "
            "vgg19_bn: both 32, 16, 8, 4, 2), or unset pruner.source to guide this model by its own decision."
        )


def guided_layer_ratios(
    masks: Mapping[str, Any], sizes: Mapping[str, int], stage_kept: Mapping[int, float]
) -> dict[str, float]:
    """Per conv: the sparsity of its stage (``stage_kept``: feature-map size -> kept fraction) for a 3x3 conv, else
    its own sparsity under ``masks``."""
    return {
        name: 1 - stage_kept[sizes[name]] if is_3x3(mask) and name in sizes else 1 - float(mask.float().mean())
        for name, mask in masks.items()
    }


def guided_sparsity_masks(context: PruneContext, ratio: float) -> tuple[dict[str, Any], dict[int, float]]:
    """Guided sparsification's keep-masks of the context's trained model at ``ratio`` (not applied), and the kept
    fraction of each stage's 3x3 weights (feature-map size -> fraction) under the guiding global decision: this
    model's, or the source cell's (``context.source``)."""
    model = context.model
    sizes = feature_map_sizes(context.spec, model_info(context.model_name).input_size)
    own = magnitude_masks(model, ratio, "global")  # also the sparsity of the convs that are not 3x3
    source = context.source
    if source is None:
        stage_kept = stage_kept_weights(own, sizes)
    else:
        if source.masks is None:
            raise ValueError("transferred guided sparsification needs the source cell's weight masks")
        stage_kept = stage_kept_weights(source.masks, feature_map_sizes(source.large, source.input_size))
    return layer_masks(model, guided_layer_ratios(own, sizes, stage_kept)), stage_kept


@register
class GuidedSparsity(Pruner):
    """Per-layer magnitude masks at the per-stage 3x3 sparsity of a global magnitude decision."""

    name = "guided_sparsity"
    title = "Guided sparsification (stage sparsity of global magnitude pruning, Sec. 5)"
    table_order = 65
    prunes_weights = True
    settings_type = GuidedSparsitySettings
    needs = Needs(trained_model=True)

    def source(self) -> SourceCell | None:
        return guiding_cell(self.settings.ratio, self.settings.source)

    def check_source(self, large: ArchSpec, input_size: int, source: SourceModels) -> None:
        models = (self.model_name, self.settings.source.model or self.model_name)
        check_sparsity_stages(large, input_size, source, models)

    def decide(self, context: PruneContext) -> Decision:
        masks, stages = guided_sparsity_masks(context, self.settings.ratio)
        apply_masks(context.model, masks)
        notes = {"guide_stage_sparsity": {str(size): round(1 - kept, 6) for size, kept in stages.items()}}
        return Decision(context.spec, context.model.state_dict(), {}, masks, notes)

    @classmethod
    def row_setting(cls, requested: Mapping[str, Any]) -> dict[str, Any]:
        """``{"ratio": 0.5}``, with ``"source": "vgg16/cifar10"`` when transferred."""
        return Guided.row_setting(requested)

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """A point at its guiding ratio's level, matched to itself: ``pruner=uniform_sparsity`` at the same ratio and
        source is its uniform control."""
        source = requested.get("source") or {}
        return Curve("weights", guided_role(source), float(requested["ratio"]), guided_match(source))
