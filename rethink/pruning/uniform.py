"""The uniform control of the paper's Figure 3 (``pruner=uniform``, docs/protocol.md#uniform): every BN channel group
keeps the same fraction of its channels, from a ratio, from the channel count of a pruned spec, or matching the
parameter count of this cell's network-slimming decision at a ratio (``match=slimming``) or of the guided pruning
that decision guides (``match=guided``, with ``source`` as guided pruning's: transferred guided pruning); the
slimming cell's pretrain and prune stages are run or reused first. It is trained from scratch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from rethink.arch.registry import spec_cost
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import with_group_widths
from rethink.errors import UserError
from rethink.pruning.alignment import RoundTo
from rethink.pruning.guided import GuidingCell, check_stages, guided_match, guided_target, source_text
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, SourceCell, SourceModels, register
from rethink.pruning.slimming import slimming_groups
from rethink.settings.typed import Ratio


def uniform_keep_widths(spec: ArchSpec, total_channels: int) -> dict[str, int]:
    """Kept channels per pool group: ``total_channels`` spread with one common keep fraction.

    Each group of width ``w`` keeps ``round_half_up(w * total_channels / pool_width)``, at least 1 (so the sum
    matches ``total_channels`` up to rounding).
    """
    groups = slimming_groups(spec, "uniform slimming control")
    full = sum(group.width for group in groups)
    if isinstance(total_channels, bool) or not isinstance(total_channels, int) or not 1 <= total_channels <= full:
        raise ValueError(
            f"total kept channels must be an integer in [1, {full}] (the pool width), got {total_channels}"
        )
    fraction = total_channels / full
    return {group.name: max(1, min(group.width, math.floor(group.width * fraction + 0.5))) for group in groups}


def uniform_target(spec: ArchSpec, reference_spec: ArchSpec) -> ArchSpec:
    """The uniform control of ``reference_spec`` (``spec`` pruned by slimming): as many kept pool channels, spread
    with one common keep fraction (:func:`uniform_keep_widths`, :func:`with_group_widths`). Groups of residual
    branches slimming removed (``on_empty=remove_block``) count as kept by none."""
    if reference_spec.family != spec.family:
        raise ValueError(f"reference spec family '{reference_spec.family}' differs from '{spec.family}'")
    names = [group.name for group in slimming_groups(spec, "uniform slimming control")]
    reference = {group.name: group.width for group in slimming_groups(reference_spec, "uniform slimming control")}
    if [name for name in names if name in reference] != list(reference):
        raise ValueError("the reference spec's channel groups differ from the large spec's (not a pruned version?)")
    return with_group_widths(spec, uniform_keep_widths(spec, sum(reference.values())))


def params_matched_target(spec: ArchSpec, params: int, input_size: int) -> ArchSpec:
    """The uniform control of ``spec`` whose parameter count is closest to ``params`` (the smaller on a tie): a
    bisection over the total kept channels, params growing with them."""
    pool = sum(group.width for group in slimming_groups(spec, "the uniform control"))

    def target(total: int) -> ArchSpec:
        return with_group_widths(spec, uniform_keep_widths(spec, total))

    low, high = 1, pool  # the largest total whose params do not exceed `params`, or 1
    while low < high:
        middle = (low + high + 1) // 2
        if spec_cost(target(middle), input_size).params <= params:
            low = middle
        else:
            high = middle - 1
    candidates = [target(total) for total in {low, min(low + 1, pool)}]
    return min(
        candidates, key=lambda c: (abs(spec_cost(c, input_size).params - params), spec_cost(c, input_size).params)
    )


@dataclass(frozen=True)
class UniformSettings(PrunerSettings):
    """``pruner=uniform``: exactly one of ``ratio`` and ``reference`` (a pruned ``spec.json`` whose channel count to
    match). ``match``: ``channels`` (``ratio`` is the fraction of channels removed), ``slimming`` (the control has
    the parameter count of this cell's network-slimming decision at ``ratio``) or ``guided`` (that of guided pruning
    at ``ratio`` from the ``source`` cell, as ``pruner=guided``'s ``source``)."""

    name: str = "uniform"
    ratio: Ratio | None = None
    reference: str | None = None
    match: Literal["channels", "slimming", "guided"] = "channels"
    source: GuidingCell = field(default_factory=GuidingCell)
    round_to: RoundTo = None  # kept widths rounded to multiples of this (auto: the device's; docs/speed.md)
    added_later: ClassVar[tuple[str, ...]] = ("round_to",)

    def validate(self, prefix: str) -> None:
        if (self.reference is None) == (self.ratio is None):
            raise UserError(
                "pruner=uniform needs exactly one of pruner.ratio (fraction of channels removed, or with "
                "pruner.match=slimming the slimming ratio whose parameter count to match) and pruner.reference (a "
                "pruned spec.json whose channel count to match)."
            )
        if self.match in ("slimming", "guided") and self.ratio is None:
            raise UserError(
                f"pruner.match={self.match} matches the parameter count of "
                f"{'a network-slimming decision' if self.match == 'slimming' else 'guided pruning'} at pruner.ratio; "
                "give pruner.ratio instead of pruner.reference."
            )
        if self.match != "guided" and self.source != GuidingCell():
            raise UserError(
                "pruner.source names the cell guiding the guided pruning whose parameter count pruner.match=guided "
                f"matches; with pruner.match={self.match} it means nothing: set pruner.match=guided or drop it."
            )
        if self.reference is not None and not Path(self.reference).is_file():
            raise UserError(f"pruner.reference='{self.reference}': no such file; give a pruned model's spec.json.")


@register
class Uniform(Pruner):
    """A predefined architecture with one keep fraction in every BN channel group; nothing to inherit."""

    name = "uniform"
    title = "Uniform channel pruning (control of Figure 3)"
    table_order = 40
    settings_type = UniformSettings
    needs = Needs(trained_model=False, predefined_target=True, family=("channel_groups",))

    def requirements(self) -> Needs:
        return dataclasses.replace(self.needs, predefined_target=self.settings.match == "channels")

    def source(self) -> SourceCell | None:
        s = self.settings
        if s.match == "channels":
            return None
        guide = s.source if s.match == "guided" else GuidingCell()
        return SourceCell({"name": "slimming", "ratio": s.ratio}, guide.model, guide.dataset, guide.seed)

    def check_source(self, large: ArchSpec, input_size: int, source: SourceModels) -> None:
        if self.settings.match == "guided":
            check_stages(large, input_size, source)

    def target_from(self, large: ArchSpec, input_size: int, source: SourceModels) -> ArchSpec:
        assert source.pruned is not None
        if self.settings.match == "guided":
            params = spec_cost(guided_target(large, input_size, source), input_size).params
        else:
            params = spec_cost(source.pruned, source.input_size).params
        return params_matched_target(large, params, input_size)

    def target(self, large: ArchSpec) -> ArchSpec:
        if self.settings.reference is not None:
            return uniform_target(large, ArchSpec.from_json(Path(self.settings.reference).read_text()))
        pool = sum(group.width for group in slimming_groups(large, "the uniform control"))
        return with_group_widths(large, uniform_keep_widths(large, max(1, round(pool * (1 - self.settings.ratio)))))

    @classmethod
    def row_setting(cls, requested: Mapping[str, Any]) -> dict[str, Any]:
        if requested.get("ratio") is not None:
            match = requested.get("match", "channels")
            matched = {} if match == "channels" else {"match": match}
            where = source_text(requested.get("source") or {}) if match == "guided" else ""
            matched |= {"source": where} if where else {}
            return {"ratio": requested["ratio"], **matched}
        reference = str(requested.get("reference"))
        return {"reference": Path(reference).parent.name or reference}

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """Matched to a slimming (guided) decision's params: a point of that ratio's level, matched to the automatic
        (that guided) curve; otherwise matched to none."""
        match, ratio = requested.get("match"), requested.get("ratio")
        if match not in ("slimming", "guided") or ratio is None:
            return Curve("channels", "uniform", None)
        matched = guided_match(requested.get("source") or {}) if match == "guided" else "automatic"
        return Curve("channels", "uniform", float(ratio), matched)
