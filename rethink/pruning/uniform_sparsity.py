"""The uniform control of guided sparsification (the paper's Sec. 5 / Figure 3, docs/protocol.md#guided),
``pruner=uniform_sparsity``: every conv layer is sparsified by one common fraction, by its own weight magnitudes (the
masks of ``pruner=magnitude pruner.scope=layer``), the fraction that removes as many conv weights as guided
sparsification at ``ratio`` guided by the same ``source`` (``pruner=guided_sparsity``) removes from the same trained
model, so the two are compared at matched parameters. Each layer loses ``int(n * fraction)`` of its ``n`` weights, so
the total falls short of guided sparsification's by less than one weight per layer. Trained from scratch
(schedule=scratch_e / scratch_b) under the masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from rethink.arch.spec import ArchSpec
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.guided import Guided, GuidingCell, guided_match
from rethink.pruning.guided_sparsity import check_sparsity_stages, guided_sparsity_masks, guiding_cell
from rethink.pruning.masks import apply_masks, magnitude_masks
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, SourceCell, SourceModels, register
from rethink.settings.typed import Ratio


@dataclass(frozen=True)
class UniformSparsitySettings(PrunerSettings):
    """``ratio`` and ``source``: those of the guided sparsification whose count of removed weights to match."""

    name: str = "uniform_sparsity"
    ratio: Ratio = 0.5
    source: GuidingCell = field(default_factory=GuidingCell)
    added_later: ClassVar[tuple[str, ...]] = ("source",)
    revision: ClassVar[int] = 1  # 1: the stage statistic is the pooled 3x3 sparsity (was the mean of layers')


@register
class UniformSparsity(Pruner):
    """Per-layer magnitude masks of one common sparsity: the share of conv weights guided sparsification removes."""

    name = "uniform_sparsity"
    title = "Uniform sparsification at guided sparsification's parameters (control, Sec. 5)"
    table_order = 66
    prunes_weights = True
    settings_type = UniformSparsitySettings
    needs = Needs(trained_model=True)

    def source(self) -> SourceCell | None:
        return guiding_cell(self.settings.ratio, self.settings.source)

    def check_source(self, large: ArchSpec, input_size: int, source: SourceModels) -> None:
        models = (self.model_name, self.settings.source.model or self.model_name)
        check_sparsity_stages(large, input_size, source, models)

    def decide(self, context: PruneContext) -> Decision:
        guided, _ = guided_sparsity_masks(context, self.settings.ratio)
        removed = sum(int((~mask).sum()) for mask in guided.values())
        fraction = removed / sum(mask.numel() for mask in guided.values())
        masks = magnitude_masks(context.model, fraction, "layer")
        apply_masks(context.model, masks)
        notes = {"guided_removed_weights": removed, "layer_sparsity": round(fraction, 6)}
        return Decision(context.spec, context.model.state_dict(), {}, masks, notes)

    @classmethod
    def row_setting(cls, requested: Mapping[str, Any]) -> dict[str, Any]:
        """``{"ratio": 0.5}``, with ``"source": "vgg16/cifar10"`` when it matches transferred guided sparsification."""
        return Guided.row_setting(requested)

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """A point at its ratio's level, matched to guided sparsification's point there (of the same source)."""
        return Curve("weights", "uniform", float(requested["ratio"]), guided_match(requested.get("source") or {}))
