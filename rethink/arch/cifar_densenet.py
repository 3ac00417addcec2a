"""Family ``cifar_densenet``: CIFAR DenseNets, DenseNet-40 with network slimming's channel selection and the
weight-level DenseNet-BC-100 (docs/protocol.md#models).

Prunable channels: with channel selection, the positions every dense layer, transition and the head read from the
concatenated stream after their full-size BN; with bottlenecks, each bottleneck's 1x1 outputs. Growth and
transition outputs are fixed.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.family import Family, GroupSlot, inner_group, selection_group
from rethink.arch.layers import (
    SELECTION_COSTS,
    check_selection,
    conv,
    init_from_config,
    init_options,
    resolve_options,
    scaled,
    selection_layer,
)
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

Config = dict[str, Any]


class DenseLayer(nn.Module):
    """BN-[select]-ReLU-conv3x3 (basic) or BN-[select]-ReLU-1x1-BN-ReLU-3x3 (bottleneck); output concatenated."""

    def __init__(
        self, inplanes: int, width: int, growth: int, bottleneck: int | None, selected: Sequence[int] | None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = selection_layer(inplanes, selected)
        self.relu = nn.ReLU(inplace=True)
        if bottleneck is None:
            self.conv1 = conv(width, growth, 3)
            self.bn2, self.conv2 = None, None
        else:
            self.conv1 = conv(width, bottleneck, 1)
            self.bn2 = nn.BatchNorm2d(bottleneck)
            self.conv2 = conv(bottleneck, growth, 3)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(x)
        if self.select is not None:
            out = self.select(out)
        out = self.conv1(self.relu(out))
        if self.conv2 is not None:
            out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    """BN-[select]-ReLU-conv1x1, then a functional (uncounted) 2x2 average pool."""

    def __init__(self, inplanes: int, width: int, out: int, selected: Sequence[int] | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = selection_layer(inplanes, selected)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv(width, out, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(x)
        if self.select is not None:
            out = self.select(out)
        return F.avg_pool2d(self.conv1(self.relu(out)), 2)


class CifarDenseNet(nn.Module):
    """CIFAR DenseNet (slimming DenseNet-40 with channel selection / weight-level DenseNet-BC-100)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        blocks, growth, in_widths = config["blocks"], config["growth"], config["in_widths"]
        bottlenecks, selected = config["bottleneck_widths"], config["selected"]
        layers = sum(blocks)
        if len(in_widths) != layers + len(blocks) or len(config["transition_out"]) != len(blocks) - 1:
            raise ValueError("cifar_densenet needs one in_width per dense layer, transition and head")
        if (bottlenecks is not None and len(bottlenecks) != layers) or (
            selected is not None and len(selected) != len(in_widths)
        ):
            raise ValueError("cifar_densenet bottleneck_widths / selected have the wrong length")
        self.conv1 = conv(3, config["stem"], 3)
        stream, position, layer = config["stem"], 0, 0
        for index, count in enumerate(blocks):
            dense = []
            for _ in range(count):
                sel = None if selected is None else selected[position]
                check_selection(f"dense layer {position}", stream, in_widths[position], sel)
                neck = None if bottlenecks is None else bottlenecks[layer]
                dense.append(DenseLayer(stream, in_widths[position], growth, neck, sel))
                stream, position, layer = stream + growth, position + 1, layer + 1
            setattr(self, f"dense{index + 1}", nn.Sequential(*dense))
            sel = None if selected is None else selected[position]
            check_selection(f"transition/head {position}", stream, in_widths[position], sel)
            if index < len(blocks) - 1:
                out = config["transition_out"][index]
                setattr(self, f"trans{index + 1}", Transition(stream, in_widths[position], out, sel))
                stream, position = out, position + 1
        self.num_blocks = len(blocks)
        self.bn = nn.BatchNorm2d(stream)
        self.select = selection_layer(stream, None if selected is None else selected[-1])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(in_widths[-1], spec.num_classes)
        init_from_config(self, config)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for index in range(self.num_blocks):
            x = getattr(self, f"dense{index + 1}")(x)
            if index < self.num_blocks - 1:
                x = getattr(self, f"trans{index + 1}")(x)
        x = self.bn(x)
        if self.select is not None:
            x = self.select(x)
        return self.fc(torch.flatten(self.avgpool(self.relu(x)), 1))


def build_densenet(spec: ArchSpec) -> nn.Module:
    """Family ``cifar_densenet``.

    config: ``stem`` stem conv width; ``growth`` channels added per dense layer; ``blocks`` dense layers per block;
    ``bottleneck_widths`` null (basic 3x3 layers) or one 1x1-bottleneck width per dense layer; ``transition_out``
    output width of each transition conv; ``in_widths`` input width of every BN-fed conv in order (each dense
    layer, then the transition, per block; the last entry is the fc input); ``selected`` null (then every
    ``in_widths`` entry equals the stream width) or one sorted kept-index list per ``in_widths`` entry;
    init options ``conv_init``, ``bn_gamma``, ``linear_init``.
    """
    return CifarDenseNet(spec)


def _densenet_maker(model: str, n: int, bottleneck: bool, compression: float) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        m = resolve_options(model, options, {"width_multiplier": 1.0})["width_multiplier"]
        growth, stem = scaled(12, m), scaled(24, m)
        streams, transition_out, stream = [], [], stem
        for index in range(3):
            streams += [stream + j * growth for j in range(n + 1)]
            stream += n * growth
            if index < 2:
                stream = max(1, int(stream * compression))
                transition_out.append(stream)
        config: Config = {
            "stem": stem,
            "growth": growth,
            "blocks": [n] * 3,
            "bottleneck_widths": [scaled(48, m)] * (3 * n) if bottleneck else None,
            "transition_out": transition_out,
            "in_widths": streams,
            "selected": None if bottleneck else [list(range(s)) for s in streams],
            **init_options("fan_out", 1.0 if bottleneck else 0.5, "default"),
        }
        return ArchSpec("cifar_densenet", num_classes, config)

    return make_spec


def channel_groups(config: Config) -> list[GroupSlot]:
    """Per dense layer: its selection (when selecting) and bottleneck outputs (with bottlenecks); per transition and
    the head: their selection."""
    selected, necks, blocks = config["selected"], config["bottleneck_widths"], config["blocks"]
    sites: list[tuple[str, str, str, bool]] = []  # (owner prefix, BN, reader of the selection, is a dense layer)
    for i, count in enumerate(blocks):
        sites += [(f"dense{i + 1}.{j}.", "bn1", "conv1", True) for j in range(count)]
        sites.append((f"trans{i + 1}.", "bn1", "conv1", False) if i < len(blocks) - 1 else ("", "bn", "fc", False))
    slots, layer = [], 0
    for position, (owner, bn, reader, dense) in enumerate(sites):
        if selected is not None:
            path = ("selected", position)
            slots.append(selection_group(owner, bn, reader, ("in_widths", position), path, selected[position]))
        if dense and necks is not None:
            slots.append(inner_group(owner[:-1], 1, 2, ("bottleneck_widths", layer), necks[layer]))
        layer += dense
    return slots


register_family(
    Family(
        "cifar_densenet",
        build_densenet,
        channel_groups=channel_groups,
        layer_costs=SELECTION_COSTS,
        channels_last=False,  # trains at 0.61x the contiguous speed in channels_last on the CPU (docs/speed.md)
    )
)
register_model(
    "densenet40",
    "cifar",
    _densenet_maker("densenet40", 12, False, 1.0),
    "CIFAR DenseNet-40, growth 12, with channel selection (slimming)",
)
register_model(
    "densenet_bc100",
    "cifar",
    _densenet_maker("densenet_bc100", 16, True, 0.5),
    "CIFAR DenseNet-BC-100, bottleneck, compression 0.5 (weight-level)",
)
