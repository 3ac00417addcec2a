"""Family ``preresnet_imagenet``: the pre-activation bottleneck ResNet-50 Sparse Structure Selection trains and prunes,
built as TuSimple's ``symbol/resnet.py`` (MXNet, "resnet-v2" style) builds it (docs/protocol.md#sss).

- No BN on the input: that symbol has no ``bn_data`` (other MXNet ResNet-v2 symbols normalise the raw image first).
- Stem: 7x7/2 conv (no bias), BN, ReLU, 3x3/2 max-pool (padding 1), as the post-activation ResNet-50.
- Block: BN-ReLU-1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1, the stride on the 3x3 (as torchvision's V1.5). The first block
  of every stage has a projection shortcut: a 1x1 strided conv without bias and without BN, reading the block's
  pre-activated input ``relu(bn1(x))``; the other blocks add their input. No ReLU follows the addition.
- Head: BN, ReLU, global average pool, fc (with bias).
- Init: MXNet ``Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)`` as SSS's ``train.py``: every conv and the
  fc weight N(0, sqrt(2 / fan_in)), the fc bias 0; BN weight 1, bias 0 (MXNet's defaults; eps 1e-5 as there).

The SSS factor ``layer{s}.{b}.scale`` (``branch_scale: true``) multiplies conv3's output before the addition, as the
symbol's ``broadcast_mul(conv3, lambda_block)``; pruning folds it into conv3's weight (exact: conv3 is linear without
bias). A block without its branch is its shortcut: the identity (it then leaves its stage) or, for a stage's first
block, the projection of its pre-activated input (``bn1``, ReLU, 1x1 conv are kept).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from rethink.arch.family import Block, Family, ResidualBlocks
from rethink.arch.imagenet_common import add_stem
from rethink.arch.imagenet_resnet import check_resnet_config, residual_blocks_of, resnet_config, without_branches
from rethink.arch.layers import resolve_options
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

FAMILY = "preresnet_imagenet"
INIT = "mxnet_xavier_gaussian_in_2"  # the only initialisation of this family (module docstring)


class PreActBottleneck(nn.Module):
    """A pre-activation bottleneck; ``inner`` = [conv1 out, conv2 out], or [] for a block without its branch."""

    def __init__(self, in_width: int, inner: list[int], out_width: int, stride: int, branch_scale: bool) -> None:
        super().__init__()
        projects = stride != 1 or in_width != out_width
        self.depth = 3 if inner else 0
        self.relu = nn.ReLU(inplace=True)
        self.bn1 = nn.BatchNorm2d(in_width) if inner or projects else None
        self.downsample = nn.Conv2d(in_width, out_width, 1, stride=stride, bias=False) if projects else None
        if inner:
            self.conv1 = nn.Conv2d(in_width, inner[0], 1, bias=False)
            self.bn2 = nn.BatchNorm2d(inner[0])
            self.conv2 = nn.Conv2d(inner[0], inner[1], 3, stride=stride, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(inner[1])
            self.conv3 = nn.Conv2d(inner[1], out_width, 1, bias=False)
        self.scale = nn.Parameter(torch.ones(())) if branch_scale and inner else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn1 is None:
            return x
        act = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(act)
        if not self.depth:
            return shortcut
        out = self.conv2(self.relu(self.bn2(self.conv1(act))))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.scale is not None:
            out = out * self.scale
        return out + shortcut


class ImageNetPreResNet(nn.Module):
    """Stem, ``layer1..layerN`` of pre-activation bottlenecks, final BN-ReLU, global pool, ``fc``."""

    def __init__(self, config: dict[str, Any], num_classes: int) -> None:
        super().__init__()
        stem = config["stem_width"]
        add_stem(self, stem)
        in_width, scale = stem, bool(config.get("branch_scale", False))
        for index, (out_width, stride, blocks) in enumerate(
            zip(config["stage_out_widths"], config["strides"], config["inner_widths"]), start=1
        ):
            layer = []
            for b, inner in enumerate(blocks):
                layer.append(PreActBottleneck(in_width, inner, out_width, stride if b == 0 else 1, scale))
                in_width = out_width
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.num_stages = len(config["inner_widths"])
        self.bn = nn.BatchNorm2d(in_width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(torch.flatten(self.avgpool(self.relu(self.bn(x))), 1))


def _check(config: dict[str, Any]) -> None:
    check_resnet_config(config, FAMILY)
    if config["block"] != "bottleneck" or config["downsample_bias"] or "selected" in config:
        raise ValueError(f"{FAMILY}: only bottleneck blocks, without projection bias or input selection")
    if config["init"] != INIT:
        raise ValueError(f"{FAMILY}: init must be {INIT!r}, got {config['init']!r}")


def init_mxnet_xavier(model: nn.Module) -> None:
    """In place: conv and Linear weights N(0, sqrt(2 / fan_in)), Linear bias 0, BN weight 1 and bias 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()  # in channels x kernel taps
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_in))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_preresnet(spec: ArchSpec) -> nn.Module:
    """Build family ``preresnet_imagenet``: the config of ``resnet_imagenet`` (bottleneck blocks; ``inner_widths``
    [] drops a branch; optional ``branch_scale``) with ``init`` the MXNet Xavier initialisation (module docstring)."""
    _check(spec.config)
    model = ImageNetPreResNet(spec.config, spec.num_classes)
    init_mxnet_xavier(model)
    return model


def _blocks(spec: ArchSpec) -> list[list[Block]]:
    _check(spec.config)
    return residual_blocks_of(spec.config, "bn3", last_layer="conv3")


def resnet50_preact_spec(num_classes: int, **options: Any) -> ArchSpec:
    """SSS's pre-activation ResNet-50 (options: width_multiplier, branch_scale=True for the SSS factors)."""
    opts = resolve_options("resnet50_preact", options, {"width_multiplier": 1.0, "branch_scale": False})
    if not isinstance(opts["branch_scale"], bool):
        raise ValueError(f"model 'resnet50_preact': branch_scale must be a bool, got {opts['branch_scale']!r}")
    config = {**resnet_config("bottleneck", [3, 4, 6, 3], opts["width_multiplier"], False), "init": INIT}
    return ArchSpec(FAMILY, num_classes, {**config, "branch_scale": True} if opts["branch_scale"] else config)


register_family(
    Family(
        FAMILY, build_preresnet, residual_blocks=ResidualBlocks(_blocks, functools.partial(without_branches, _blocks))
    )
)
register_model(
    "resnet50_preact",
    "imagenet",
    resnet50_preact_spec,
    "ResNet-50, pre-activation, as Sparse Structure Selection's MXNet code builds it (25.5M params)",
)
