"""L1-norm filter pruning (Li et al., 2017; docs/protocol.md#l1), ``pruner=l1``: the paper's predefined targets
(``variant``) or per-stage / per-layer ratios, keeping the filters of largest L1 norm of the trained large model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_widths, prunable_groups, shrink
from rethink.pruning.context import PruneContext
from rethink.pruning.criteria import keep_largest, l1_filter_scores
from rethink.pruning.decision import Decision
from rethink.pruning.registry import Needs, Pruner, PrunerSettings, register
from rethink.pruning.targets import l1_target_spec
from rethink.settings.typed import NonNegativeInt


@dataclass(frozen=True)
class FilterTargetSettings(PrunerSettings):
    """A predefined target: ``variant`` (A | B: VGG-16-A, ResNet-56/110-A/B, ResNet-34-A/B), or ``stage_ratios``
    (fraction of filters removed per stage) / ``layer_ratios`` (per prunable conv), plus conv ids to ``skip``."""

    name: str = "l1"
    variant: str | None = None
    stage_ratios: list[float] | None = None
    layer_ratios: list[float] | None = None
    skip: list[NonNegativeInt] = field(default_factory=list)


@register
class L1(Pruner):
    """Keeps, in every prunable conv, the filters of largest L1 norm, as many as the target says."""

    name = "l1"
    title = "L1-norm filter pruning (Li et al., 2017)"
    table_order = 10
    settings_type = FilterTargetSettings
    needs = Needs(trained_model=True, predefined_target=True, family=("channel_groups", "filter_numbering"))

    def requested(self) -> dict[str, Any]:
        s = self.settings
        return {
            "variant": s.variant,
            "stage_ratios": s.stage_ratios,
            "layer_ratios": s.layer_ratios,
            "skip": s.skip or None,
        }

    def target(self, large: ArchSpec) -> ArchSpec:
        s = self.settings
        return l1_target_spec(large, self.model_name, s.variant, s.stage_ratios, s.layer_ratios, s.skip or None)

    def choose(self, weight: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
        """The ``k`` filters of ``weight`` (a group's producer) to keep."""
        return keep_largest(l1_filter_scores(weight.detach().cpu()), k)

    def decide(self, context: PruneContext) -> Decision:
        widths = group_widths(context.target)
        generator = torch.Generator().manual_seed(context.seed)
        keep = {}
        for group in prunable_groups(context.spec):
            if widths[group.name] < group.width:
                weight = context.model.get_submodule(str(group.producer)).weight
                keep[group.name] = self.choose(weight, widths[group.name], generator)
        spec, pruned = shrink(context.model, context.spec, keep)
        if spec != context.target:
            raise RuntimeError("surgery produced a spec different from the pruning target")  # an internal invariant
        return Decision(spec, pruned.state_dict(), keep)

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        if requested.get("variant"):
            return {"variant": str(requested["variant"])}
        return {k: requested[k] for k in ("stage_ratios", "layer_ratios", "skip") if requested.get(k) not in (None, [])}
