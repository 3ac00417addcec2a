"""Unstructured magnitude pruning (Han et al., 2015; docs/protocol.md#magnitude), ``pruner=magnitude``: remove the
``ratio`` of conv weights with the smallest magnitude by one global threshold (or the same fraction of every conv,
``scope: layer``); ``rounds > 1`` is iterative magnitude pruning (docs/protocol.md#lottery)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from rethink.errors import UserError
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.masks import apply_masks, magnitude_masks
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, register
from rethink.settings.typed import PositiveInt, Ratio


@dataclass(frozen=True)
class MagnitudeSettings(PrunerSettings):
    """``ratio`` of the conv weights removed (``scope``: one global threshold, or per layer); with ``rounds > 1``,
    ``round_ratio`` of the remaining weights per round, the survivors reset to the original initialisation and
    retrained with the pretrain recipe in between (final sparsity ``1 - (1 - round_ratio)^rounds``)."""

    name: str = "magnitude"
    ratio: Ratio = 0.5
    scope: Literal["global", "layer"] = "global"
    rounds: PositiveInt = 1
    round_ratio: Ratio | None = None

    def validate(self, prefix: str) -> None:
        if self.rounds > 1 and self.round_ratio is None:
            raise UserError(
                f"{prefix}.rounds={self.rounds} needs {prefix}.round_ratio in [0, 1): the share of the remaining conv "
                "weights each round removes (Frankle & Carbin use 0.2)."
            )


@register
class Magnitude(Pruner):
    """Weight masks over every Conv2d: the spec stays the large one, pruned weights stay exactly zero."""

    name = "magnitude"
    title = "Non-structured weight pruning (Han et al., 2015)"
    table_order = 60
    prunes_weights = True
    settings_type = MagnitudeSettings
    needs = Needs(trained_model=True)  # masks every Conv2d weight: no family declaration needed

    def rounds(self) -> int:
        return self.settings.rounds

    def decide(self, context: PruneContext) -> Decision:
        s = self.settings
        existing = None if context.previous is None else context.previous.masks
        masks = magnitude_masks(context.model, s.round_ratio if s.rounds > 1 else s.ratio, s.scope, existing=existing)
        apply_masks(context.model, masks)
        return Decision(context.spec, context.model.state_dict(), {}, masks)

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        rounds, round_ratio = requested.get("rounds") or 1, requested.get("round_ratio")
        if rounds > 1 and round_ratio is not None:
            ratio = round(1 - (1 - float(round_ratio)) ** rounds, 4)
        else:
            ratio = None if requested.get("ratio") is None else float(requested["ratio"])
        out: dict[str, Any] = {"ratio": ratio}
        if requested.get("scope", "global") != "global":
            out["scope"] = requested["scope"]
        if rounds > 1:
            out["rounds"] = rounds
        return out

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve | None:
        """One-shot global masks are the automatic curve, per-layer ones the uniform curve (the same count of
        weights removed, so matched at the same ratio); iterative pruning is neither."""
        if (requested.get("rounds") or 1) > 1:
            return None
        role = "automatic" if requested.get("scope", "global") == "global" else "uniform"
        return Curve("weights", role, float(requested["ratio"]))
