"""Family ``cifar_resnet``: the CIFAR ResNet-(6n+2) of the L1-norm code, option-A shortcuts (docs/protocol.md#models).

Its prunable channels are the inner width of every block (conv1's outputs, read by conv2); the residual stream is
fixed. Branches can be removed (Sparse Structure Selection): an inner width of 0 leaves ``relu(shortcut(x))``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.family import (
    Block,
    Family,
    GroupSlot,
    NumberedConv,
    ResidualBlocks,
    drop_branches,
    inner_group,
    stage_blocks,
)
from rethink.arch.layers import conv, init_from_config, init_options, resolve_options, scaled
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

Config = dict[str, Any]


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block with a parameter-free option-A shortcut (avg-pool + zero channel padding).

    ``inner == 0`` removes the residual branch (Sparse Structure Selection): the block is ``relu(shortcut(x))``,
    the ReLU after the add kept as in the reference block. ``branch_scale`` multiplies the branch output (after
    bn2) by a learnable scalar ``scale`` (init 1), the SSS factor; off, the block has no such parameter.
    """

    def __init__(
        self, inplanes: int, inner: int, planes: int, stride: int, detach_shortcut: bool, branch_scale: bool = False
    ) -> None:
        super().__init__()
        self.has_branch = inner > 0
        if self.has_branch:
            self.conv1 = conv(inplanes, inner, 3, stride)
            self.bn1 = nn.BatchNorm2d(inner)
            self.conv2 = conv(inner, planes, 3)
            self.bn2 = nn.BatchNorm2d(planes)
        self.scale = nn.Parameter(torch.ones(())) if branch_scale and self.has_branch else None
        self.relu = nn.ReLU(inplace=True)
        self.stride = stride
        self.pad = planes - inplanes
        self.detach_shortcut = detach_shortcut
        if self.pad < 0:
            raise ValueError(f"option-A shortcut cannot shrink channels ({inplanes} -> {planes})")

    def shortcut(self, x: Tensor) -> Tensor:
        """Identity, or (at a stage change) functional 2x2 avg-pool then zero channels appended; not counted."""
        if self.stride == 1 and self.pad == 0:
            return x
        if self.detach_shortcut:
            x = x.detach()
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride)
        return F.pad(x, (0, 0, 0, 0, 0, self.pad))

    def forward(self, x: Tensor) -> Tensor:
        if not self.has_branch:
            return self.relu(self.shortcut(x))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.scale is not None:
            out = out * self.scale
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2) of the L1-norm code: stem, three stages of basic blocks, AvgPool(8), Linear."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        stages, blocks, widths = config["stages"], config["blocks"], config["inner"]
        if len(widths) != sum(blocks) or len(stages) != len(blocks):
            raise ValueError(f"cifar_resnet needs one inner width per block: {len(widths)} vs {sum(blocks)}")
        self.conv1 = conv(3, stages[0], 3)
        self.bn1 = nn.BatchNorm2d(stages[0])
        self.relu = nn.ReLU(inplace=True)
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in widths):
            raise ValueError(f"cifar_resnet inner widths must be ints >= 0 (0 removes a branch), got {widths}")
        width_of = iter(widths)
        inplanes = stages[0]
        for index, (planes, count) in enumerate(zip(stages, blocks)):
            stage = []
            for b in range(count):
                stride, width = (2 if index > 0 and b == 0 else 1), next(width_of)
                if width == 0 and config["detach_shortcut"] and (stride > 1 or inplanes != planes):
                    raise ValueError(
                        f"cifar_resnet stage {index} block {b}: a removed branch on a downsampling block with "
                        "detach_shortcut=true would stop every gradient to the layers before it"
                    )
                scale = bool(config.get("branch_scale", False))
                stage.append(BasicBlock(inplanes, width, planes, stride, config["detach_shortcut"], scale))
                inplanes = planes
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.num_stages = len(stages)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(stages[-1], spec.num_classes)
        init_from_config(self, config)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(spec: ArchSpec) -> nn.Module:
    """Family ``cifar_resnet``.

    config: ``stages`` residual widths per stage ([16, 32, 64]; the stem outputs stages[0]); ``blocks`` blocks per
    stage; ``inner`` flat list with one inner width (conv1 output) per block, the only thing L1 pruning changes;
    ``detach_shortcut`` (True reproduces the reference code, where no gradient flows through the two downsampling
    shortcuts because they are rebuilt from ``x.data``); init options ``conv_init``, ``bn_gamma``, ``linear_init``.

    Sparse Structure Selection (:mod:`rethink.pruning.sss`): an ``inner`` width of 0 removes that block's residual
    branch, leaving ``relu(shortcut(x))`` (the identity, or the option-A downsampling shortcut; the block's ReLU
    after the add is kept, as in the reference block; not allowed on a downsampling block with ``detach_shortcut``).
    SSS pruning drops removed identity blocks from ``blocks`` and ``inner`` altogether (their ``relu(x)`` is ``x``,
    the input being post-ReLU), so a 0 stays only where the shortcut downsamples; network slimming's
    ``on_empty=remove_block`` leaves a 0 in place instead (module paths unchanged). Optional ``branch_scale`` (absent
    = false): every block with a branch gets a learnable scalar ``layer{s}.{b}.scale`` (init 1) multiplying its
    branch output, the factor SSS trains with a sparse penalty.
    """
    return CifarResNet(spec)


def channel_groups(config: Config) -> list[GroupSlot]:
    """The inner width of every block that has a branch (conv1 -> bn1 -> conv2)."""
    pairs = enumerate(zip(stage_blocks(config["blocks"]), config["inner"]))
    return [inner_group(block, 1, 1, ("inner", k), width) for k, (block, width) in pairs if width]


def filter_numbering(config: Config) -> list[NumberedConv]:
    """Reference ids: the stem is conv 1, block ``b`` (0-based over all stages) has conv1 = ``2 + 2b``; only conv1 of
    each block is prunable (conv2 writes the residual stream). A removed branch keeps its ids reserved."""
    blocks = stage_blocks(config["blocks"])
    stages = [s for s, count in enumerate(config["blocks"]) for _ in range(count)]
    return [
        NumberedConv(2 + 2 * b, stages[b], f"{path}.conv1")
        for b, (path, width) in enumerate(zip(blocks, config["inner"]))
        if width
    ]


def _blocks(spec: ArchSpec) -> list[list[Block]]:
    config = spec.config
    widths = iter(config["inner"])
    inplanes, stages = config["stages"][0], []
    for s, (planes, count) in enumerate(zip(config["stages"], config["blocks"])):
        stage = []
        for b in range(count):
            downsamples = (s > 0 and b == 0) or inplanes != planes
            stage.append(Block(s, b, next(widths) > 0, downsamples, "bn2"))
            inplanes = planes
        stages.append(stage)
    return stages


def _without(
    spec: ArchSpec, keep: Sequence[Sequence[bool]], drop_identity: bool = True
) -> tuple[Config, dict[str, Block]]:
    blocks = _blocks(spec)
    flat = iter(spec.config["inner"])
    inner = [[next(flat) for _ in stage] for stage in blocks]
    stages, old_of_new = drop_branches(blocks, inner, keep, 0, drop_identity)
    config = {k: v for k, v in spec.config.items() if k != "branch_scale"}
    config.update(inner=[w for stage in stages for w in stage], blocks=[len(stage) for stage in stages])
    return config, old_of_new


def _maker(model: str, n: int) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        defaults = {"width_multiplier": 1.0, "detach_shortcut": False, "branch_scale": False}
        opts = resolve_options(model, options, defaults)
        stages = [scaled(w, opts["width_multiplier"]) for w in (16, 32, 64)]
        config: Config = {
            "stages": stages,
            "blocks": [n] * 3,
            "inner": [w for w in stages for _ in range(n)],
            "detach_shortcut": bool(opts["detach_shortcut"]),
            **init_options("fan_out", 1.0, "default"),
        }
        if opts["branch_scale"]:  # only when on, so existing specs (and their JSON hashes) are unchanged
            config["branch_scale"] = True
        return ArchSpec("cifar_resnet", num_classes, config)

    return make_spec


register_family(
    Family(
        "cifar_resnet",
        build_resnet,
        channel_groups=channel_groups,
        filter_numbering=filter_numbering,
        residual_blocks=ResidualBlocks(_blocks, _without),
    )
)
register_model("resnet56", "cifar", _maker("resnet56", 9), "CIFAR ResNet-56, option-A shortcuts (L1-norm)")
register_model("resnet110", "cifar", _maker("resnet110", 18), "CIFAR ResNet-110, option-A shortcuts (L1-norm)")
