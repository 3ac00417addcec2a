"""Family ``resnet_imagenet``: ImageNet ResNets (torchvision layout and parameter names) with an explicit width for
every pruned conv (docs/protocol.md#models).

Prunable channels: every branch conv but the last of each block (the last writes the residual stream). Branches can
be removed (Sparse Structure Selection, network slimming's ``on_empty=remove_block``): the block keeps its shortcut.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch
from torch import nn

from rethink.arch.family import (
    Block,
    Family,
    GroupSlot,
    NumberedConv,
    ResidualBlocks,
    drop_branches,
    inner_group,
    selection_group,
)
from rethink.arch.imagenet_common import add_stem, init_config, init_weights
from rethink.arch.layers import SELECTION_COSTS, resolve_options, scaled, selection_layer
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

# Block kind -> (kernel size of each branch conv, index of the strided conv, default expansion).
BLOCK_KINDS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "basic": ((3, 3), 0, 1),
    "bottleneck": ((1, 3, 1), 1, 4),
}
STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
STEM_WIDTH = 64


class ResidualBlock(nn.Module):
    """A basic or bottleneck block; ``inner`` lists the output widths of every branch conv but the last.

    An empty ``inner`` means the residual branch is removed (SSS-style) and the block is ``relu(shortcut(x))`` (the
    identity on a post-ReLU input when it has no projection). ``branch_scale`` multiplies the branch output (after
    its last BN) by a learnable scalar ``scale`` (init 1), the SSS factor; off, the block has no such parameter.
    ``selected``: the residual-stream channels the branch reads (a channel selection before conv1, regression
    pruning's ResNet-50-2x; the shortcut reads them all).
    """

    def __init__(
        self,
        kind: str,
        in_width: int,
        inner: list[int],
        out_width: int,
        stride: int,
        downsample: nn.Module | None,
        branch_scale: bool = False,
        selected: list[int] | None = None,
    ) -> None:
        super().__init__()
        kernels, strided, _ = BLOCK_KINDS[kind]
        self.select = selection_layer(in_width, selected) if inner else None
        widths = [in_width if self.select is None else len(selected), *inner, out_width]
        self.depth = len(kernels) if inner else 0
        for i in range(self.depth):
            conv = nn.Conv2d(
                widths[i],
                widths[i + 1],
                kernels[i],
                stride=stride if i == strided else 1,
                padding=kernels[i] // 2,
                bias=False,
            )
            setattr(self, f"conv{i + 1}", conv)
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(widths[i + 1]))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.scale = nn.Parameter(torch.ones(())) if branch_scale and self.depth else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = x if self.select is None else self.select(x)
        for i in range(1, self.depth + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.depth:
                out = self.relu(out)
        if self.scale is not None:
            out = out * self.scale
        return self.relu(out + shortcut if self.depth else shortcut)


class ImageNetResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), ``layer1..layerN`` of residual blocks, global pool, ``fc``."""

    def __init__(self, config: dict[str, Any], num_classes: int) -> None:
        super().__init__()
        stem = config["stem_width"]
        add_stem(self, stem)
        in_width = stem
        stages = zip(config["stage_out_widths"], config["strides"], config["inner_widths"])
        selected = config.get("selected")
        for index, (out_width, stride, blocks) in enumerate(stages, start=1):
            layer = []
            for b, inner in enumerate(blocks):
                block_stride = stride if b == 0 else 1
                downsample = _projection(in_width, out_width, block_stride, config["downsample_bias"])
                scale = bool(config.get("branch_scale", False))
                chosen = None if selected is None else selected[index - 1][b]
                layer.append(
                    ResidualBlock(config["block"], in_width, inner, out_width, block_stride, downsample, scale, chosen)
                )
                in_width = out_width
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.num_stages = len(config["inner_widths"])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _projection(in_width: int, out_width: int, stride: int, bias: bool) -> nn.Module | None:
    """1x1 strided conv + BN shortcut where the residual stream changes shape, else None (identity)."""
    if stride == 1 and in_width == out_width:
        return None
    conv = nn.Conv2d(in_width, out_width, kernel_size=1, stride=stride, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(out_width))


def resnet_config(
    kind: str, blocks_per_stage: list[int], width_multiplier: float, downsample_bias: bool
) -> dict[str, Any]:
    """The unpruned config of a torchvision-style ResNet (every default width scaled by ``width_multiplier``)."""
    kernels, _, expansion = BLOCK_KINDS[kind]
    planes = [scaled(p, width_multiplier) for p in STAGE_PLANES]
    return {
        "block": kind,
        "stem_width": scaled(STEM_WIDTH, width_multiplier),
        "stage_out_widths": [scaled(p * expansion, width_multiplier) for p in STAGE_PLANES],
        "strides": list(STAGE_STRIDES),
        "blocks_per_stage": list(blocks_per_stage),
        "inner_widths": [[[p] * (len(kernels) - 1) for _ in range(n)] for p, n in zip(planes, blocks_per_stage)],
        "downsample_bias": downsample_bias,
        "init": init_config(conv_bias="pytorch_default", bn_weight=1.0, linear="pytorch_default"),
    }


RESNET_KEYS = (
    "block",
    "stem_width",
    "stage_out_widths",
    "strides",
    "blocks_per_stage",
    "inner_widths",
    "downsample_bias",
    "init",
)


def _positive_ints(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)


def check_resnet_config(config: dict[str, Any], family: str = "resnet_imagenet") -> None:
    """Raise ValueError if ``config`` is not a consistent ``resnet_imagenet`` config (``family`` names it in errors)."""
    missing = [key for key in RESNET_KEYS if key not in config]
    if missing:
        raise ValueError(f"{family}: config lacks {missing}")
    if config["block"] not in BLOCK_KINDS:
        raise ValueError(f"{family}: block must be one of {sorted(BLOCK_KINDS)}, got {config['block']!r}")
    stages = config["inner_widths"]
    if any(len(config[key]) != len(stages) for key in ("stage_out_widths", "strides", "blocks_per_stage")):
        raise ValueError(f"{family}: stage_out_widths, strides, blocks_per_stage, inner_widths differ in length")
    if not _positive_ints([config["stem_width"], *config["stage_out_widths"], *config["strides"]]):
        raise ValueError(f"{family}: stem_width, stage_out_widths and strides must be positive ints")
    if not isinstance(config.get("branch_scale", False), bool):
        raise ValueError(f"{family}: branch_scale must be a bool, got {config['branch_scale']!r}")
    inner_len = len(BLOCK_KINDS[config["block"]][0]) - 1
    selected = config.get("selected")
    if selected is not None and [len(stage) for stage in selected] != [len(stage) for stage in stages]:
        raise ValueError(f"{family}: selected needs one index list per block, like inner_widths")
    for s, blocks in enumerate(stages):
        if len(blocks) != config["blocks_per_stage"][s]:
            raise ValueError(f"{family}: stage {s} has {len(blocks)} blocks, not blocks_per_stage[{s}]")
        for b, inner in enumerate(blocks):
            where = f"{family}: stage {s} block {b}"
            if len(inner) not in (0, inner_len) or not _positive_ints(inner):
                raise ValueError(f"{where}: inner widths must be {inner_len} positive ints or [], got {inner}")
            if selected is not None and inner and not selected[s][b]:
                raise ValueError(f"{where}: a block with a branch selects at least one input channel")


def build_resnet(spec: ArchSpec) -> nn.Module:
    """Build family ``resnet_imagenet``.

    Config layout (all widths explicit; a pruning step edits ``inner_widths`` and rebuilds):
      - ``block``: "basic" (3x3, 3x3) or "bottleneck" (1x1, 3x3 strided, 1x1; torchvision/V1.5 stride placement)
      - ``stem_width``: output width of the 7x7 stem conv (64)
      - ``stage_out_widths``: residual-stream width of each stage (64..512 basic, 256..2048 bottleneck); fixed
      - ``strides``: stride of each stage's first block ([1, 2, 2, 2])
      - ``blocks_per_stage``: e.g. [3, 4, 6, 3]
      - ``inner_widths``: per stage, per block, the branch-conv output widths except the last
        (basic: [conv1_out]; bottleneck: [conv1_out, conv2_out]); [] drops the branch (SSS removes such identity
        blocks from their stage, slimming's ``on_empty=remove_block`` keeps them in place)
      - ``downsample_bias``: bias on the 1x1 projection convs (ThiNet/regression ResNet-50)
      - ``branch_scale`` (optional, absent = false): a learnable scalar ``layer{s}.{b}.scale`` (init 1) multiplying
        every residual branch, the factor Sparse Structure Selection trains (:mod:`rethink.pruning.sss`)
      - ``selected`` (optional, absent = none): per stage, per block, the sorted residual-stream channels its branch
        reads (``layer{s}.{b}.select`` before conv1; the shortcut reads every channel), as regression pruning's
        ResNet-50-2x does
      - ``init``: see :func:`rethink.arch.imagenet_common.init_weights`
    """
    check_resnet_config(spec.config)
    model = ImageNetResNet(spec.config, spec.num_classes)
    init_weights(model, spec.config["init"])
    return model


def channel_groups(config: dict[str, Any]) -> list[GroupSlot]:
    """Per block with a branch: its input selection (when it has one, read by conv1), then the output of every branch
    conv but the last, read by the next conv of its block."""
    selected, slots = config.get("selected"), []
    for s, stage in enumerate(config["inner_widths"]):
        for b, inner in enumerate(stage):
            block = f"layer{s + 1}.{b}"
            if selected is not None and inner:
                slots.append(selection_group(f"{block}.", None, "conv1", None, ("selected", s, b), selected[s][b]))
            slots += [inner_group(block, i + 1, i + 1, ("inner_widths", s, b, i), w) for i, w in enumerate(inner)]
    return slots


def filter_numbering(config: dict[str, Any]) -> list[NumberedConv]:
    """Reference ids count the 3x3/1x1 branch convs only (the stem is 1, projection shortcuts are not counted), a
    block taking as many ids as it has convs; a removed branch keeps its ids reserved."""
    per_block = len(BLOCK_KINDS[config["block"]][0])
    convs, first_id = [], 2
    for stage, blocks in enumerate(config["inner_widths"]):
        for j, inner in enumerate(blocks):
            convs += [NumberedConv(first_id + k, stage, f"layer{stage + 1}.{j}.conv{k + 1}") for k in range(len(inner))]
            first_id += per_block
    return convs


def residual_blocks_of(config: dict[str, Any], last_bn: str, last_layer: str | None = None) -> list[list[Block]]:
    """The residual blocks of an ImageNet ResNet config per stage (``last_bn`` / ``last_layer``: see
    :class:`~rethink.arch.family.Block`)."""
    in_width, stages = config["stem_width"], []
    for s, (blocks, out_width, stride) in enumerate(
        zip(config["inner_widths"], config["stage_out_widths"], config["strides"])
    ):
        stage = []
        for b, inner in enumerate(blocks):
            downsamples = (stride if b == 0 else 1) != 1 or in_width != out_width
            stage.append(Block(s, b, bool(inner), downsamples, last_bn, last_layer=last_layer))
            in_width = out_width
        stages.append(stage)
    return stages


def without_branches(
    blocks: Callable[[ArchSpec], list[list[Block]]],
    spec: ArchSpec,
    keep: Sequence[Sequence[bool]],
    drop_identity: bool = True,
) -> tuple[dict[str, Any], dict[str, Block]]:
    """The config of an ImageNet ResNet ``spec`` without the branches ``keep`` marks False (``blocks``: its
    family's residual blocks), and each new block's old block (:class:`~rethink.arch.family.ResidualBlocks`)."""
    declared = blocks(spec)
    stages, old_of_new = drop_branches(declared, spec.config["inner_widths"], keep, [], drop_identity)
    config = {k: v for k, v in spec.config.items() if k != "branch_scale"}
    config.update(inner_widths=stages, blocks_per_stage=[len(stage) for stage in stages])
    if "selected" in config:
        config["selected"] = drop_branches(declared, spec.config["selected"], keep, [], drop_identity)[0]
    return config, old_of_new


def _blocks(spec: ArchSpec) -> list[list[Block]]:
    check_resnet_config(spec.config)
    return residual_blocks_of(spec.config, f"bn{len(BLOCK_KINDS[spec.config['block']][0])}")


def _with_branch_scale(config: dict[str, Any], on: Any) -> dict[str, Any]:
    """``config`` plus ``branch_scale: true`` when ``on``; the key is left out when off, so existing specs (and
    their JSON hashes) are unchanged."""
    if not isinstance(on, bool):
        raise ValueError(f"branch_scale must be a bool, got {on!r}")
    return {**config, "branch_scale": True} if on else config


def resnet34_spec(num_classes: int, **options: Any) -> ArchSpec:
    """ResNet-34 of the L1-norm ImageNet experiments (options: width_multiplier, branch_scale)."""
    opts = resolve_options("resnet34", options, {"width_multiplier": 1.0, "branch_scale": False})
    config = resnet_config("basic", [3, 4, 6, 3], opts["width_multiplier"], downsample_bias=False)
    return ArchSpec(FAMILY, num_classes, _with_branch_scale(config, opts["branch_scale"]))


def resnet50_spec(num_classes: int, **options: Any) -> ArchSpec:
    """ResNet-50 (options: width_multiplier, downsample_bias=True for the ThiNet/regression definition,
    branch_scale=True for Sparse Structure Selection's per-block factors, input_selection=True for a selection of
    every stream channel before each conv1, which regression pruning thins)."""
    defaults = {"width_multiplier": 1.0, "downsample_bias": False, "branch_scale": False, "input_selection": False}
    opts = resolve_options("resnet50", options, defaults)
    for flag in ("downsample_bias", "input_selection"):
        if not isinstance(opts[flag], bool):
            raise ValueError(f"model 'resnet50': {flag} must be a bool, got {opts[flag]!r}")
    config = resnet_config("bottleneck", [3, 4, 6, 3], opts["width_multiplier"], opts["downsample_bias"])
    spec = ArchSpec(FAMILY, num_classes, _with_branch_scale(config, opts["branch_scale"]))
    return with_input_selection(spec) if opts["input_selection"] else spec


def with_input_selection(spec: ArchSpec) -> ArchSpec:
    """``spec`` with a selection of every stream channel before each branch (the same function, prunable inputs)."""
    config = spec.config
    ins = [config["stem_width"], *config["stage_out_widths"][:-1]]
    selected = [
        [list(range(ins[s] if b == 0 else config["stage_out_widths"][s])) for b in range(len(stage))]
        for s, stage in enumerate(config["inner_widths"])
    ]
    return spec.replace_config(selected=selected)


FAMILY = "resnet_imagenet"
register_family(
    Family(
        FAMILY,
        build_resnet,
        channel_groups=channel_groups,
        filter_numbering=filter_numbering,
        residual_blocks=ResidualBlocks(_blocks, functools.partial(without_branches, _blocks)),
        layer_costs=SELECTION_COSTS,
    )
)
register_model("resnet34", "imagenet", resnet34_spec, "ResNet-34, torchvision layout, L1-norm base (21.8M params)")
register_model(
    "resnet50", "imagenet", resnet50_spec, "ResNet-50, torchvision layout; downsample_bias=True = ThiNet/regression"
)
