"""Guided pruning (the paper's Sec. 5, docs/protocol.md#guided), ``pruner=guided``: a network-slimming decision
reduced to one kept-channel ratio per stage (layers with the same feature-map size), applied uniformly inside each
stage of this model, which is then trained from scratch.

The guiding decision is the source cell's: by default network slimming at ``ratio`` on this model, data set and seed
(so it is the very decision of the matching ``pruner=slimming`` cell, shared through the store); with
``source.model`` / ``source.dataset`` set it is **transferred guided pruning** (the paper: VGG-16 on CIFAR-10 guiding
VGG-19 on CIFAR-100), where stages are matched by feature-map size and the two models must have the same stages.

Stage ratio: the mean over the source stage's BN channel groups of kept / full width (a group of a removed residual
branch kept 0). Rounding rule: a group of width ``w`` in a stage of ratio ``r`` keeps ``max(1, floor(w * r + 0.5))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from rethink.arch.spec import ArchSpec
from rethink.arch.stages import group_stages, stage_kept_ratios, stage_list
from rethink.arch.surgery import group_widths, with_group_widths
from rethink.pruning.alignment import RoundTo
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, SourceCell, SourceModels, register
from rethink.pruning.slimming import slimming_groups
from rethink.settings.typed import NonNegativeInt, Ratio


@dataclass(frozen=True)
class GuidingCell:
    """The cell whose slimming decision guides: its model / data set / seed (None: this cell's)."""

    model: str | None = None
    dataset: str | None = None
    seed: NonNegativeInt | None = None


@dataclass(frozen=True)
class GuidedSettings(PrunerSettings):
    """``pruner=guided``: ``ratio``, the network-slimming ratio of the guiding decision, made in the ``source``
    cell."""

    name: str = "guided"
    ratio: Ratio = 0.5
    source: GuidingCell = field(default_factory=GuidingCell)
    round_to: RoundTo = None  # kept widths rounded to multiples of this (auto: the device's; docs/speed.md)
    added_later: ClassVar[tuple[str, ...]] = ("round_to",)


def guided_widths(spec: ArchSpec, ratios: Mapping[int, float], input_size: int) -> dict[str, int]:
    """Kept channels of each BN channel group of ``spec``: its width times its stage's ratio, rounded half up, at
    least 1 (``ratios``: feature-map size -> kept ratio)."""
    stages = group_stages(spec, input_size)
    return {
        group.name: max(1, min(group.width, math.floor(group.width * ratios[stages[group.name]] + 0.5)))
        for group in slimming_groups(spec, "guided pruning")
    }


def source_stage_ratios(source_large: ArchSpec, source_pruned: ArchSpec, input_size: int) -> dict[int, float]:
    """The kept-channel ratio of each stage of a slimming decision (``source_large`` pruned to ``source_pruned``)."""
    pool = {group.name: group.width for group in slimming_groups(source_large, "guided pruning's source")}
    stages = {name: size for name, size in group_stages(source_large, input_size).items() if name in pool}
    return stage_kept_ratios(pool, group_widths(source_pruned), stages)


@register
class Guided(Pruner):
    """A new architecture from the stage ratios of another cell's slimming decision; trained from scratch."""

    name = "guided"
    title = "Guided pruning (stage ratios of network slimming, Sec. 5)"
    table_order = 45
    settings_type = GuidedSettings
    needs = Needs(trained_model=False, family=("channel_groups",))

    def source(self) -> SourceCell:
        s = self.settings.source
        return SourceCell({"name": "slimming", "ratio": self.settings.ratio}, s.model, s.dataset, s.seed)

    def check(self, large: ArchSpec) -> None:
        slimming_groups(large, "guided pruning")  # the stage ratios are applied to BN channel groups

    def check_source(self, large: ArchSpec, input_size: int, source: SourceModels) -> None:
        check_stages(large, input_size, source)

    def target_from(self, large: ArchSpec, input_size: int, source: SourceModels) -> ArchSpec:
        return guided_target(large, input_size, source)

    @classmethod
    def row_setting(cls, requested: Mapping[str, Any]) -> dict[str, Any]:
        """``{"ratio": 0.5}`` (the guiding slimming ratio), with ``"source": "vgg16/cifar10"`` when transferred."""
        where = source_text(requested.get("source") or {})
        return {"ratio": requested.get("ratio"), **({"source": where} if where else {})}

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        """A point at its guiding ratio's level, matched to itself: ``pruner=uniform pruner.match=guided`` with the
        same ratio and source is its uniform control."""
        source = requested.get("source") or {}
        return Curve("channels", guided_role(source), float(requested["ratio"]), guided_match(source))


def source_text(source: Mapping[str, Any]) -> str:
    """``vgg16/cifar10``, ``vgg16 seed 2``: the guiding cell where it is not this one (``pruner.source``), else ''."""
    where = "/".join(str(source[k]) for k in ("model", "dataset") if source.get(k) is not None)
    seed = [] if source.get("seed") is None else [f"seed {source['seed']}"]
    return " ".join([where, *seed] if where else seed)


def guided_role(source: Mapping[str, Any]) -> str:
    """``transferred guided`` when another model or data set guides (``pruner.source``), else ``guided``."""
    return "transferred guided" if source.get("model") is not None or source.get("dataset") is not None else "guided"


def guided_match(source: Mapping[str, Any]) -> str:
    """The :class:`Curve` ``matched`` of guided pruning by ``source``, and of its uniform control: its role and the
    guiding cell (``transferred guided from vgg16/cifar10``), so controls of different sources never mix."""
    where = source_text(source)
    return guided_role(source) + (f" from {where}" if where else "")


def check_stages(large: ArchSpec, input_size: int, source: SourceModels) -> None:
    """Raise ValueError unless the source model has ``large``'s stages (so its stage ratios can be applied)."""
    ours, theirs = _stages(large, input_size), _stages(source.large, source.input_size)
    if ours != theirs:
        raise ValueError(
            f"the source model's stages (feature-map sizes {theirs}) differ from this model's ({ours}), so its "
            "stage ratios cannot be transferred; pick a source model with the same stages (e.g. VGG-16 for "
            "VGG-19: both have 32, 16, 8, 4, 2 and the classifier)"
        )


def guided_target(large: ArchSpec, input_size: int, source: SourceModels) -> ArchSpec:
    """``large`` pruned to the stage ratios of the source cell's slimming decision (``source.pruned``)."""
    assert source.pruned is not None
    ratios = source_stage_ratios(source.large, source.pruned, source.input_size)
    return with_group_widths(large, guided_widths(large, ratios, input_size))


def _stages(spec: ArchSpec, input_size: int) -> list[int]:
    names = {group.name for group in slimming_groups(spec, "guided pruning")}
    return stage_list({name: size for name, size in group_stages(spec, input_size).items() if name in names})
