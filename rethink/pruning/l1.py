"""L1-norm filter pruning (Li et al., 2017; docs/protocol.md#l1), ``pruner=l1``: the paper's predefined targets
(``variant``) or per-stage / per-layer ratios, keeping the filters of largest L1 norm of the trained large model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from rethink.arch.family import ChannelGroup
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_widths, prunable_groups, shrink, with_group_widths
from rethink.errors import UserError
from rethink.pruning.alignment import RoundTo
from rethink.pruning.context import PruneContext
from rethink.pruning.criteria import keep_largest, l1_filter_scores
from rethink.pruning.decision import Decision
from rethink.pruning.registry import Needs, Pruner, PrunerSettings, register
from rethink.pruning.targets import l1_target_spec
from rethink.rounding import floor
from rethink.settings.typed import NonNegativeInt, Ratio


@dataclass(frozen=True)
class FilterTargetSettings(PrunerSettings):
    """A predefined target: ``variant`` (A | B: VGG-16-A, ResNet-56/110-A/B, ResNet-34-A/B), or ``stage_ratios``
    (fraction of filters removed per stage) / ``layer_ratios`` (per prunable conv), plus conv ids to ``skip``; or
    ``ratio``, one fraction of channels removed from every channel group (any family with channel groups: each keeps
    ``max(1, floor(width * (1 - ratio)))``)."""

    name: str = "l1"
    variant: str | None = None
    stage_ratios: list[float] | None = None
    layer_ratios: list[float] | None = None
    skip: list[NonNegativeInt] = field(default_factory=list)
    ratio: Ratio | None = None
    round_to: RoundTo = None  # kept widths rounded to multiples of this (auto: the device's; docs/speed.md)
    added_later: ClassVar[tuple[str, ...]] = ("ratio", "round_to")

    def validate(self, prefix: str) -> None:
        if self.ratio is not None and (self.variant, self.stage_ratios, self.layer_ratios) != (None, None, None):
            raise UserError(
                f"{prefix}.ratio={self.ratio} is a target of its own: leave {prefix}.variant, {prefix}.stage_ratios "
                f"and {prefix}.layer_ratios unset with it, or drop {prefix}.ratio."
            )


def ratio_target(large: ArchSpec, ratio: float) -> ArchSpec:
    """``large`` with every channel group keeping ``max(1, floor(width * (1 - ratio)))`` channels."""
    return with_group_widths(large, {g.name: max(1, floor(g.width * (1 - ratio))) for g in prunable_groups(large)})


def group_l1_scores(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """L1 norm of each channel's filters, summed over every layer producing the group's channels (one layer for a
    plain group; for a coupled group — a residual stream — each conv writing into it: docs/protocol.md#graph-models)."""
    return sum(l1_filter_scores(model.get_submodule(layer).weight.detach().cpu()) for layer in group.filter_layers())


@register
class L1(Pruner):
    """Keeps, in every prunable conv, the filters of largest L1 norm, as many as the target says."""

    name = "l1"
    title = "L1-norm filter pruning (Li et al., 2017)"
    table_order = 10
    settings_type = FilterTargetSettings
    needs = Needs(trained_model=True, predefined_target=True, family=("channel_groups", "filter_numbering"))

    def requirements(self) -> Needs:
        if self.settings.ratio is not None:
            return dataclasses.replace(self.needs, family=("channel_groups",))
        return self.needs

    def requested(self) -> dict[str, Any]:
        s = self.settings
        ratio = {k: v for k, v in (("ratio", s.ratio), ("round_to", s.round_to)) if v is not None}
        return {
            "variant": s.variant,
            "stage_ratios": s.stage_ratios,
            "layer_ratios": s.layer_ratios,
            "skip": s.skip or None,
            **ratio,
        }

    def target(self, large: ArchSpec) -> ArchSpec:
        s = self.settings
        if s.ratio is not None:
            return ratio_target(large, s.ratio)
        return l1_target_spec(large, self.model_name, s.variant, s.stage_ratios, s.layer_ratios, s.skip or None)

    def choose(self, scores: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
        """The ``k`` channels to keep of a group whose channels have L1 ``scores``."""
        return keep_largest(scores, k)

    def decide(self, context: PruneContext) -> Decision:
        widths = group_widths(context.target)
        generator = torch.Generator().manual_seed(context.seed)
        keep = {}
        for group in prunable_groups(context.spec):
            if widths[group.name] < group.width:
                scores = group_l1_scores(context.model, group)
                keep[group.name] = self.choose(scores, widths[group.name], generator)
        spec, pruned = shrink(context.model, context.spec, keep)
        if spec != context.target:
            raise RuntimeError("surgery produced a spec different from the pruning target")  # an internal invariant
        return Decision(spec, pruned.state_dict(), keep)

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        if requested.get("variant"):
            return {"variant": str(requested["variant"])}
        keys = ("stage_ratios", "layer_ratios", "skip", "ratio")
        return {k: requested[k] for k in keys if requested.get(k) not in (None, [])}
