"""The uniform control of guided sparsification (the paper's Sec. 5 / Figure 3, docs/protocol.md#guided),
``pruner=uniform_sparsity``: every conv layer is sparsified by one common fraction, by its own weight magnitudes (the
masks of ``pruner=magnitude pruner.scope=layer``), the fraction that removes as many conv weights as guided
sparsification at ``ratio`` removes from the same trained model (``pruner=guided_sparsity``), so the two are compared
at matched parameters. Each layer loses ``int(n * fraction)`` of its ``n`` weights, so the total falls short of guided
sparsification's by less than one weight per layer. Trained from scratch (schedule=scratch_e / scratch_b) under the
masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.guided_sparsity import guided_sparsity_masks
from rethink.pruning.masks import apply_masks, magnitude_masks
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, register
from rethink.settings.typed import Ratio


@dataclass(frozen=True)
class UniformSparsitySettings(PrunerSettings):
    """``ratio``: the global magnitude ratio of the guided sparsification whose count of removed weights to match."""

    name: str = "uniform_sparsity"
    ratio: Ratio = 0.5


@register
class UniformSparsity(Pruner):
    """Per-layer magnitude masks of one common sparsity: the share of conv weights guided sparsification removes."""

    name = "uniform_sparsity"
    title = "Uniform sparsification at guided sparsification's parameters (control, Sec. 5)"
    table_order = 66
    prunes_weights = True
    settings_type = UniformSparsitySettings
    needs = Needs(trained_model=True)

    def decide(self, context: PruneContext) -> Decision:
        guided, _ = guided_sparsity_masks(context, self.settings.ratio)
        removed = sum(int((~mask).sum()) for mask in guided.values())
        fraction = removed / sum(mask.numel() for mask in guided.values())
        masks = magnitude_masks(context.model, fraction, "layer")
        apply_masks(context.model, masks)
        notes = {"guided_removed_weights": removed, "layer_sparsity": round(fraction, 6)}
        return Decision(context.spec, context.model.state_dict(), {}, masks, notes)

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """A point at its ratio's level, matched to guided sparsification's point there."""
        return Curve("weights", "uniform", float(requested["ratio"]), "guided")
