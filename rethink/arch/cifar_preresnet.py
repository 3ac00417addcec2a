"""Family ``cifar_preresnet``: CIFAR pre-activation bottleneck ResNets, PreResNet-164 with network slimming's channel
selection and the weight-level PreResNet-110 (docs/protocol.md#models).

Prunable channels: each block's conv1 and conv2 outputs, and, with channel selection, the positions each block (and
the head) reads from the residual stream after its full-size BN. The stream itself and conv3 outputs are fixed.
Branches can be removed (network slimming's ``on_empty=remove_block``): the block keeps only its shortcut.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from rethink.arch.family import (
    Block,
    Family,
    GroupSlot,
    ResidualBlocks,
    drop_branches,
    inner_group,
    selection_group,
    stage_blocks,
)
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


class PreBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-[select]-ReLU-1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1, projection shortcut, no BN.

    Empty ``widths``: the residual branch is removed and the block is its projection shortcut (an identity block
    without a branch is built as ``nn.Identity`` instead, see :class:`CifarPreResNet`).
    """

    def __init__(
        self, inplanes: int, widths: Sequence[int], out: int, stride: int, selected: Sequence[int] | None
    ) -> None:
        super().__init__()
        self.has_branch = bool(widths)
        if self.has_branch:
            c0, c1, c2 = widths
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.select = selection_layer(inplanes, selected)
            self.conv1 = conv(c0, c1, 1)
            self.bn2 = nn.BatchNorm2d(c1)
            self.conv2 = conv(c1, c2, 3, stride)
            self.bn3 = nn.BatchNorm2d(c2)
            self.conv3 = conv(c2, out, 1)
            self.relu = nn.ReLU(inplace=True)
        self.downsample = conv(inplanes, out, 1, stride) if stride != 1 or inplanes != out else None

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        if not self.has_branch:
            return shortcut
        out = self.bn1(x)
        if self.select is not None:
            out = self.select(out)
        out = self.conv1(self.relu(out))
        out = self.conv2(self.relu(self.bn2(out)))
        return self.conv3(self.relu(self.bn3(out))) + shortcut


class CifarPreResNet(nn.Module):
    """CIFAR pre-activation bottleneck ResNet (slimming PreResNet-164 / weight-level PreResNet-110)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        planes, blocks, expansion = config["planes"], config["blocks"], config["expansion"]
        block_widths, selected = config["block_widths"], config["selected"]
        if len(block_widths) != sum(blocks) or (selected is not None and len(selected) != sum(blocks) + 1):
            raise ValueError("cifar_preresnet needs one [in, c1, c2] and one selection per block, plus a final one")
        self.conv1 = conv(3, config["stem"], 3)
        inplanes, position = config["stem"], 0
        for index, (width, count) in enumerate(zip(planes, blocks)):
            stage = []
            for b in range(count):
                sel, widths = None if selected is None else selected[position], block_widths[position]
                stride = 2 if index > 0 and b == 0 else 1
                if widths:
                    check_selection(f"block {position}", inplanes, widths[0], sel)
                if widths or stride != 1 or inplanes != width * expansion:
                    stage.append(PreBottleneck(inplanes, widths, width * expansion, stride, sel))
                else:  # a removed branch on an identity shortcut: the block is its input
                    stage.append(nn.Identity())
                inplanes, position = width * expansion, position + 1
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.num_stages = len(planes)
        final_sel = None if selected is None else selected[-1]
        check_selection("final", inplanes, config["final_width"], final_sel)
        self.bn = nn.BatchNorm2d(inplanes)
        self.select = selection_layer(inplanes, final_sel)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(config["final_width"], spec.num_classes)
        init_from_config(self, config)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        x = self.bn(x)
        if self.select is not None:
            x = self.select(x)
        return self.fc(torch.flatten(self.avgpool(self.relu(x)), 1))


def build_preresnet(spec: ArchSpec) -> nn.Module:
    """Family ``cifar_preresnet``.

    config: ``stem`` stem conv width; ``planes`` bottleneck planes per stage (block output = expansion*planes);
    ``blocks`` blocks per stage; ``expansion`` (4); ``block_widths`` one [in, c1, c2] per block (conv1 input =
    channels selected after bn1, conv1 output, conv2 output); ``final_width`` fc input; ``selected`` null (no
    channel selection: every ``in`` must equal the stream width) or one sorted index list per selection layer (each
    block's, then the final one) with ``len == in``; init options ``conv_init``, ``bn_gamma``, ``linear_init``.

    A block whose ``block_widths`` entry (and ``selected`` entry) is ``[]`` has no residual branch (network
    slimming's ``on_empty=remove_block``): it is its 1x1 projection where the stream changes shape, else the
    identity (``nn.Identity``: its output is its input, as no ReLU follows the addition).
    """
    return CifarPreResNet(spec)


def _preresnet_maker(model: str, n: int, selection: bool, bn_gamma: float) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        m = resolve_options(model, options, {"width_multiplier": 1.0})["width_multiplier"]
        stem, planes, expansion = scaled(16, m), [scaled(w, m) for w in (16, 32, 64)], 4
        block_widths, inplanes = [], stem
        for width in planes:
            for _ in range(n):
                block_widths.append([inplanes, width, width])
                inplanes = width * expansion
        streams = [w[0] for w in block_widths] + [inplanes]
        config: Config = {
            "stem": stem,
            "planes": planes,
            "blocks": [n] * 3,
            "expansion": expansion,
            "block_widths": block_widths,
            "final_width": inplanes,
            "selected": [list(range(s)) for s in streams] if selection else None,
            **init_options("fan_out", bn_gamma, "default"),
        }
        return ArchSpec("cifar_preresnet", num_classes, config)

    return make_spec


def channel_groups(config: Config) -> list[GroupSlot]:
    """Per block with a branch: its selection (when selecting), conv1 and conv2 outputs; then the head's selection."""
    selected, blocks, slots = config["selected"], stage_blocks(config["blocks"]), []
    for k, (block, widths) in enumerate(zip(blocks, config["block_widths"])):
        if not widths:
            continue
        _, c1, c2 = widths
        if selected is not None:
            path, chosen = ("selected", k), selected[k]
            slots.append(selection_group(f"{block}.", "bn1", "conv1", ("block_widths", k, 0), path, chosen))
        slots.append(inner_group(block, 1, 2, ("block_widths", k, 1), c1))
        slots.append(inner_group(block, 2, 3, ("block_widths", k, 2), c2))
    if selected is not None:
        slots.append(selection_group("", "bn", "fc", ("final_width",), ("selected", len(blocks)), selected[-1]))
    return slots


def _blocks(spec: ArchSpec) -> list[list[Block]]:
    config = spec.config
    widths = iter(config["block_widths"])
    inplanes, stages = config["stem"], []
    for s, (planes, count) in enumerate(zip(config["planes"], config["blocks"])):
        out, stage = planes * config["expansion"], []
        for b in range(count):
            downsamples = (s > 0 and b == 0) or inplanes != out
            stage.append(Block(s, b, bool(next(widths)), downsamples, "bn3", last_layer="conv3"))
            inplanes = out
        stages.append(stage)
    return stages


def _without(
    spec: ArchSpec, keep: Sequence[Sequence[bool]], drop_identity: bool = True
) -> tuple[Config, dict[str, Block]]:
    blocks, config = _blocks(spec), dict(spec.config)

    def per_stage(flat: Sequence[Any]) -> list[list[Any]]:
        items = iter(flat)
        return [[next(items) for _ in stage] for stage in blocks]

    stages, old_of_new = drop_branches(blocks, per_stage(config["block_widths"]), keep, [], drop_identity)
    config.update(block_widths=[w for stage in stages for w in stage], blocks=[len(stage) for stage in stages])
    if config["selected"] is not None:
        chosen = drop_branches(blocks, per_stage(config["selected"][:-1]), keep, [], drop_identity)[0]
        config["selected"] = [c for stage in chosen for c in stage] + [config["selected"][-1]]
    return config, old_of_new


register_family(
    Family(
        "cifar_preresnet",
        build_preresnet,
        channel_groups=channel_groups,
        # a branch's last layer is a conv after a ReLU: SSS's factor cannot be folded into its last BN
        residual_blocks=ResidualBlocks(_blocks, _without, branch_factors=False),
        layer_costs=SELECTION_COSTS,
        channels_last=False,  # trains at 0.60x the contiguous speed in channels_last on the CPU (docs/speed.md)
    )
)
register_model(
    "preresnet164",
    "cifar",
    _preresnet_maker("preresnet164", 18, True, 0.5),
    "CIFAR PreResNet-164 bottleneck with channel selection (slimming)",
)
register_model(
    "preresnet110",
    "cifar",
    _preresnet_maker("preresnet110", 12, False, 1.0),
    "CIFAR PreResNet-110 bottleneck, 12 blocks/stage (weight-level)",
)
