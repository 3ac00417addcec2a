"""A network's stages: its layers grouped by the size of the feature map they produce (the paper's Sec. 5: "layers
with the same feature-map size"). Guided pruning reads them, and the report plots the kept ratio of each stage.

Sizes are traced once per spec on the meta device (no memory, no data): the output height of every conv and
BatchNorm, and 1 for a Linear (the classifier). Stages are numbered from the largest feature map down.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import torch
from torch import nn

from rethink.arch.family import ChannelGroup
from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import prunable_groups


def feature_map_sizes(spec: ArchSpec, input_size: int) -> dict[str, int]:
    """Output feature-map height of every Conv2d, BatchNorm and Linear (1) of ``spec``'s model, by module path."""
    return dict(_traced(spec.to_json(), input_size))


@lru_cache(maxsize=64)
def _traced(spec_json: str, input_size: int) -> tuple[tuple[str, int], ...]:
    sizes: dict[str, int] = {}
    with torch.device("meta"):
        model = build(ArchSpec.from_json(spec_json)).eval()
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.Linear)):
                module.register_forward_hook(
                    lambda _m, _i, out, name=name: sizes.__setitem__(name, int(out.shape[2]) if out.dim() == 4 else 1)
                )
        model(torch.empty(1, 3, input_size, input_size))
    return tuple(sizes.items())


def group_size(group: ChannelGroup, sizes: Mapping[str, int]) -> int:
    """The feature-map size of a channel group: its producer's output (a selection group: its BN's)."""
    where = group.producer if group.producer is not None else group.bn
    if where is None or where not in sizes:
        raise ValueError(f"channel group '{group.name}' has no traced producer or BN to size its feature map")
    return sizes[where]


def group_stages(spec: ArchSpec, input_size: int) -> dict[str, int]:
    """Feature-map size of each prunable channel group of ``spec`` (the stage it belongs to), in network order."""
    sizes = feature_map_sizes(spec, input_size)
    return {group.name: group_size(group, sizes) for group in prunable_groups(spec)}


def stage_list(stages: Mapping[str, int]) -> list[int]:
    """The distinct feature-map sizes of ``stages`` (name -> size), largest first."""
    return sorted(set(stages.values()), reverse=True)


def stage_kept_ratios(
    widths: Mapping[str, int], kept: Mapping[str, int], stages: Mapping[str, int]
) -> dict[int, float]:
    """Per stage (feature-map size, largest first): the mean over its groups of kept / full width (a group missing
    from ``kept`` kept nothing, e.g. a removed residual branch). Groups without a stage in ``stages`` are skipped."""
    ratios: dict[int, list[float]] = {size: [] for size in stage_list(stages)}
    for name, width in widths.items():
        if name in stages:
            ratios[stages[name]].append(kept.get(name, 0) / width)
    return {size: sum(values) / len(values) for size, values in ratios.items() if values}
