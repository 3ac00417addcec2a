"""CIFAR architectures (paper-spec §4.1-4.6), each built from an :class:`ArchSpec` with explicit per-layer widths.

Families (``spec.family``): ``cifar_vgg``, ``cifar_resnet``, ``cifar_preresnet``, ``cifar_densenet``. Each builder's
docstring documents its ``config`` layout; a pruning step edits only widths / selection indices and calls
``build``. Which layers are modules and which are functional follows the reference code, because the FLOP counter
(:mod:`rethink.cost`) only sees registered leaf modules (paper-spec §3).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.layers import ChannelSelection, init_weights
from rethink.arch.spec import ArchSpec

Config = dict[str, Any]


def _scale(width: int, multiplier: float) -> int:
    """``width`` scaled by ``multiplier``, rounded, at least 1."""
    return max(1, round(width * multiplier))


def _resolve(model: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``options``; unknown option names raise a ValueError listing the accepted ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"model '{model}' got unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(defaults))}"
        )
    resolved = {**defaults, **options}
    if not resolved["width_multiplier"] > 0:
        raise ValueError(f"width_multiplier must be > 0, got {resolved['width_multiplier']}")
    return resolved


def _init(model: nn.Module, config: Config) -> None:
    init_weights(model, config["conv_init"], config["bn_gamma"], config["linear_init"])


def _init_options(conv_init: str, bn_gamma: float, linear_init: str) -> Config:
    return {"conv_init": conv_init, "bn_gamma": bn_gamma, "linear_init": linear_init}


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)


def _selection(num_channels: int, indices: Sequence[int] | None) -> ChannelSelection | None:
    return None if indices is None else ChannelSelection(num_channels, indices)


def _check_selection(where: str, full: int, width: int, indices: Sequence[int] | None) -> None:
    """A conv reading a ``full``-channel stream with ``width`` inputs needs ``width`` selected indices (or none)."""
    if indices is None and width != full:
        raise ValueError(f"{where}: input width {width} != stream width {full} and no channel selection")
    if indices is not None and len(indices) != width:
        raise ValueError(f"{where}: input width {width} != {len(indices)} selected channels")


# --------------------------------------------------------------------------------------------------------------- VGG

VGG_CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class CifarVGG(nn.Module):
    """CIFAR VGG: conv3x3-BN-ReLU stack with max-pools, inline 2x2 average pool, then the classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        self.features = _vgg_features(config["cfg"], config["conv_bias"])
        last = [w for w in config["cfg"] if w != "M"][-1]
        if config["head"] == "mlp":
            hidden = config["hidden"]
            self.classifier: nn.Module = nn.Sequential(
                nn.Linear(last, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, spec.num_classes),
            )
        elif config["head"] == "linear":
            self.classifier = nn.Linear(last, spec.num_classes)
        else:
            raise ValueError(f"VGG head must be 'mlp' or 'linear', got {config['head']!r}")
        _init(self, config)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(self.features(x), 2)  # functional: not counted (paper-spec §3)
        return self.classifier(torch.flatten(x, 1))


def _vgg_features(cfg: Sequence[int | str], bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            width = int(item)
            layers += [_conv(channels, width, 3, bias=bias), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def build_vgg(spec: ArchSpec) -> nn.Module:
    """Family ``cifar_vgg``.

    config: ``cfg`` list of conv widths with ``"M"`` for 2x2 max-pools (4 pools: 32x32 ends at 2x2, then an inline
    2x2 average pool); ``head`` "mlp" (Linear(cfg[-1], hidden)-BN1d-ReLU-Linear) or "linear" (one Linear);
    ``hidden`` (mlp head width); ``conv_bias``; init options ``conv_init``, ``bn_gamma``, ``linear_init``.
    """
    return CifarVGG(spec)


def _vgg_maker(model: str, depth: int, head: str, weight_level: bool) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        defaults: dict[str, Any] = {"width_multiplier": 1.0}
        if not weight_level:
            defaults["head"] = head
        opts = _resolve(model, options, defaults)
        if opts.get("head", head) not in ("mlp", "linear"):
            raise ValueError(f"model '{model}': head must be 'mlp' or 'linear', got {opts['head']!r}")
        m = opts["width_multiplier"]
        cfg = [w if w == "M" else _scale(int(w), m) for w in VGG_CFGS[depth]]
        config: Config = {"cfg": cfg, "head": opts.get("head", head), "conv_bias": weight_level}
        if config["head"] == "mlp":
            config["hidden"] = _scale(512, m)
        init = _init_options("fan_in", 1.0, "normal") if weight_level else _init_options("fan_out", 0.5, "normal")
        return ArchSpec("cifar_vgg", num_classes, {**config, **init})

    return make_spec


# ------------------------------------------------------------------------------------------------------------ ResNet


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
            self.conv1 = _conv(inplanes, inner, 3, stride)
            self.bn1 = nn.BatchNorm2d(inner)
            self.conv2 = _conv(inner, planes, 3)
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
        stages, blocks, inner = config["stages"], config["blocks"], config["inner"]
        if len(inner) != sum(blocks) or len(stages) != len(blocks):
            raise ValueError(f"cifar_resnet needs one inner width per block: {len(inner)} vs {sum(blocks)}")
        self.conv1 = _conv(3, stages[0], 3)
        self.bn1 = nn.BatchNorm2d(stages[0])
        self.relu = nn.ReLU(inplace=True)
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in inner):
            raise ValueError(f"cifar_resnet inner widths must be ints >= 0 (0 removes a branch), got {inner}")
        widths = iter(inner)
        inplanes = stages[0]
        for index, (planes, count) in enumerate(zip(stages, blocks)):
            stage = []
            for b in range(count):
                stride, width = (2 if index > 0 and b == 0 else 1), next(widths)
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
        _init(self, config)

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
    the input being post-ReLU), so a 0 stays only where the shortcut downsamples. Optional ``branch_scale`` (absent
    = false): every block with a branch gets a learnable scalar ``layer{s}.{b}.scale`` (init 1) multiplying its
    branch output, the factor SSS trains with a sparse penalty.
    """
    return CifarResNet(spec)


def _resnet_maker(model: str, n: int) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        opts = _resolve(model, options, {"width_multiplier": 1.0, "detach_shortcut": False, "branch_scale": False})
        stages = [_scale(w, opts["width_multiplier"]) for w in (16, 32, 64)]
        config: Config = {
            "stages": stages,
            "blocks": [n] * 3,
            "inner": [w for w in stages for _ in range(n)],
            "detach_shortcut": bool(opts["detach_shortcut"]),
            **_init_options("fan_out", 1.0, "default"),
        }
        if opts["branch_scale"]:  # only when on, so existing specs (and their JSON hashes) are unchanged
            config["branch_scale"] = True
        return ArchSpec("cifar_resnet", num_classes, config)

    return make_spec


# --------------------------------------------------------------------------------------------------------- PreResNet


class PreBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-[select]-ReLU-1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1, projection shortcut, no BN."""

    def __init__(
        self, inplanes: int, widths: Sequence[int], out: int, stride: int, selected: Sequence[int] | None
    ) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = _selection(inplanes, selected)
        self.conv1 = _conv(c0, c1, 1)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv2 = _conv(c1, c2, 3, stride)
        self.bn3 = nn.BatchNorm2d(c2)
        self.conv3 = _conv(c2, out, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _conv(inplanes, out, 1, stride) if stride != 1 or inplanes != out else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(x)
        if self.select is not None:
            out = self.select(out)
        out = self.conv1(self.relu(out))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class CifarPreResNet(nn.Module):
    """CIFAR pre-activation bottleneck ResNet (slimming PreResNet-164 / weight-level PreResNet-110)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        planes, blocks, expansion = config["planes"], config["blocks"], config["expansion"]
        block_widths, selected = config["block_widths"], config["selected"]
        if len(block_widths) != sum(blocks) or (selected is not None and len(selected) != sum(blocks) + 1):
            raise ValueError("cifar_preresnet needs one [in, c1, c2] and one selection per block, plus a final one")
        self.conv1 = _conv(3, config["stem"], 3)
        inplanes, position = config["stem"], 0
        for index, (width, count) in enumerate(zip(planes, blocks)):
            stage = []
            for b in range(count):
                sel = None if selected is None else selected[position]
                _check_selection(f"block {position}", inplanes, block_widths[position][0], sel)
                stride = 2 if index > 0 and b == 0 else 1
                stage.append(PreBottleneck(inplanes, block_widths[position], width * expansion, stride, sel))
                inplanes, position = width * expansion, position + 1
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.num_stages = len(planes)
        final_sel = None if selected is None else selected[-1]
        _check_selection("final", inplanes, config["final_width"], final_sel)
        self.bn = nn.BatchNorm2d(inplanes)
        self.select = _selection(inplanes, final_sel)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(config["final_width"], spec.num_classes)
        _init(self, config)

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
    """
    return CifarPreResNet(spec)


def _preresnet_maker(model: str, n: int, selection: bool, bn_gamma: float) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        m = _resolve(model, options, {"width_multiplier": 1.0})["width_multiplier"]
        stem, planes, expansion = _scale(16, m), [_scale(w, m) for w in (16, 32, 64)], 4
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
            **_init_options("fan_out", bn_gamma, "default"),
        }
        return ArchSpec("cifar_preresnet", num_classes, config)

    return make_spec


# ---------------------------------------------------------------------------------------------------------- DenseNet


class DenseLayer(nn.Module):
    """BN-[select]-ReLU-conv3x3 (basic) or BN-[select]-ReLU-1x1-BN-ReLU-3x3 (bottleneck); output concatenated."""

    def __init__(
        self, inplanes: int, width: int, growth: int, bottleneck: int | None, selected: Sequence[int] | None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = _selection(inplanes, selected)
        self.relu = nn.ReLU(inplace=True)
        if bottleneck is None:
            self.conv1 = _conv(width, growth, 3)
            self.bn2, self.conv2 = None, None
        else:
            self.conv1 = _conv(width, bottleneck, 1)
            self.bn2 = nn.BatchNorm2d(bottleneck)
            self.conv2 = _conv(bottleneck, growth, 3)

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
        self.select = _selection(inplanes, selected)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = _conv(width, out, 1)

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
        self.conv1 = _conv(3, config["stem"], 3)
        stream, position, layer = config["stem"], 0, 0
        for index, count in enumerate(blocks):
            dense = []
            for _ in range(count):
                sel = None if selected is None else selected[position]
                _check_selection(f"dense layer {position}", stream, in_widths[position], sel)
                neck = None if bottlenecks is None else bottlenecks[layer]
                dense.append(DenseLayer(stream, in_widths[position], growth, neck, sel))
                stream, position, layer = stream + growth, position + 1, layer + 1
            setattr(self, f"dense{index + 1}", nn.Sequential(*dense))
            sel = None if selected is None else selected[position]
            _check_selection(f"transition/head {position}", stream, in_widths[position], sel)
            if index < len(blocks) - 1:
                out = config["transition_out"][index]
                setattr(self, f"trans{index + 1}", Transition(stream, in_widths[position], out, sel))
                stream, position = out, position + 1
        self.num_blocks = len(blocks)
        self.bn = nn.BatchNorm2d(stream)
        self.select = _selection(stream, None if selected is None else selected[-1])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(in_widths[-1], spec.num_classes)
        _init(self, config)

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
        m = _resolve(model, options, {"width_multiplier": 1.0})["width_multiplier"]
        growth, stem = _scale(12, m), _scale(24, m)
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
            "bottleneck_widths": [_scale(48, m)] * (3 * n) if bottleneck else None,
            "transition_out": transition_out,
            "in_widths": streams,
            "selected": None if bottleneck else [list(range(s)) for s in streams],
            **_init_options("fan_out", 1.0 if bottleneck else 0.5, "default"),
        }
        return ArchSpec("cifar_densenet", num_classes, config)

    return make_spec


# ---------------------------------------------------------------------------------------------------------- registry

FAMILIES: dict[str, Callable[[ArchSpec], nn.Module]] = {
    "cifar_vgg": build_vgg,
    "cifar_resnet": build_resnet,
    "cifar_preresnet": build_preresnet,
    "cifar_densenet": build_densenet,
}

MODELS: dict[str, tuple[str, Callable[..., ArchSpec], str]] = {
    **{
        f"vgg{d}": (
            "cifar",
            _vgg_maker(f"vgg{d}", d, "mlp", False),
            f"CIFAR VGG-{d} (L1-norm code; head='linear': slimming version)",
        )
        for d in (11, 13, 16, 19)
    },
    "vgg19_bn": ("cifar", _vgg_maker("vgg19_bn", 19, "linear", True), "CIFAR VGG-19-BN with conv bias (weight-level)"),
    "resnet56": ("cifar", _resnet_maker("resnet56", 9), "CIFAR ResNet-56, option-A shortcuts (L1-norm)"),
    "resnet110": ("cifar", _resnet_maker("resnet110", 18), "CIFAR ResNet-110, option-A shortcuts (L1-norm)"),
    "preresnet164": (
        "cifar",
        _preresnet_maker("preresnet164", 18, True, 0.5),
        "CIFAR PreResNet-164 bottleneck with channel selection (slimming)",
    ),
    "preresnet110": (
        "cifar",
        _preresnet_maker("preresnet110", 12, False, 1.0),
        "CIFAR PreResNet-110 bottleneck, 12 blocks/stage (weight-level)",
    ),
    "densenet40": (
        "cifar",
        _densenet_maker("densenet40", 12, False, 1.0),
        "CIFAR DenseNet-40, growth 12, with channel selection (slimming)",
    ),
    "densenet_bc100": (
        "cifar",
        _densenet_maker("densenet_bc100", 16, True, 0.5),
        "CIFAR DenseNet-BC-100, bottleneck, compression 0.5 (weight-level)",
    ),
}
