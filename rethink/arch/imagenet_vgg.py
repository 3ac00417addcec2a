"""Family ``vgg_imagenet``: ImageNet VGGs (torchvision layout and parameter names) with explicit conv and classifier
widths (docs/protocol.md#models). Every conv and hidden Linear is prunable: a chain ending at the classifier, the
first Linear reading each channel's flattened 7x7 map. The optional ``head: gap`` (ThiNet's VGG-GAP / VGG-Tiny)
replaces the 7x7 pool and the MLP by a 14x14 average pool and one Linear.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rethink.arch.family import Family, GroupSlot, Layer, chain, vgg_numbering
from rethink.arch.imagenet_common import init_config, init_weights
from rethink.arch.layers import POOL, resolve_options, scaled
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

VGG_FEATURES: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
CLASSIFIER_WIDTHS = (4096, 4096)
POOLED_SIZE = 7
GAP_POOL = (14, 2)  # kernel, stride of the global average pool of a ``gap`` head (a 14x14 map at 224x224 inputs)
VGG_KEYS = ("features", "batch_norm", "classifier", "classifier_bn", "dropout", "init")


class ImageNetVGG(nn.Module):
    """``features`` (conv3x3 with bias [+ BN] + ReLU, 2x2 max-pools), ``avgpool`` to 7x7, ``classifier`` MLP; with a
    ``gap`` head a 14x14 average pool and the classifier's last Linear only."""

    def __init__(self, config: dict[str, Any], num_classes: int) -> None:
        super().__init__()
        self.features = _features(config["features"], config["batch_norm"])
        last = [v for v in config["features"] if v != POOL][-1]
        if config.get("head", "fc") == "gap":
            self.avgpool: nn.Module = nn.AvgPool2d(*GAP_POOL)
            in_width = last
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((POOLED_SIZE, POOLED_SIZE))
            in_width = last * POOLED_SIZE * POOLED_SIZE
        self.classifier = _classifier(
            in_width, config["classifier"], config["classifier_bn"], config["dropout"], num_classes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _features(cfg: list[int | str], batch_norm: bool) -> nn.Sequential:
    """Conv stack; every conv is 3x3, pad 1, with bias, followed by BN (optional) and ReLU."""
    layers: list[nn.Module] = []
    in_width = 3
    for value in cfg:
        if value == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_width, value, kernel_size=3, padding=1))
        layers.extend([nn.BatchNorm2d(value)] if batch_norm else [])
        layers.append(nn.ReLU(inplace=True))
        in_width = value
    return nn.Sequential(*layers)


def _classifier(in_width: int, hidden: list[int], batch_norm: bool, dropout: float, num_classes: int) -> nn.Sequential:
    """Hidden Linear layers, each followed by BN1d (optional), ReLU and Dropout (if ``dropout`` > 0); final Linear."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_width, width))
        layers.extend([nn.BatchNorm1d(width)] if batch_norm else [])
        layers.append(nn.ReLU(inplace=True))
        layers.extend([nn.Dropout(p=dropout)] if dropout > 0 else [])
        in_width = width
    layers.append(nn.Linear(in_width, num_classes))
    return nn.Sequential(*layers)


def vgg_config(
    features: str, width_multiplier: float, batch_norm: bool, classifier_bn: bool, dropout: float, bn_weight: float
) -> dict[str, Any]:
    """The unpruned config of VGG ``features`` ("A" = 11 layers, "D" = 16), widths scaled by ``width_multiplier``."""
    return {
        "features": [v if v == POOL else scaled(int(v), width_multiplier) for v in VGG_FEATURES[features]],
        "batch_norm": batch_norm,
        "classifier": [scaled(w, width_multiplier) for w in CLASSIFIER_WIDTHS],
        "classifier_bn": classifier_bn,
        "dropout": dropout,
        "init": init_config(conv_bias="zero", bn_weight=bn_weight, linear="normal_0.01"),
    }


def check_vgg_config(config: dict[str, Any]) -> None:
    """Raise ValueError if ``config`` is not a consistent ``vgg_imagenet`` config."""
    missing = [key for key in VGG_KEYS if key not in config]
    if missing:
        raise ValueError(f"vgg_imagenet: config lacks {missing}")
    convs = [v for v in config["features"] if v != POOL]
    if not convs or any(not isinstance(v, int) or v < 1 for v in convs):
        raise ValueError(f"vgg_imagenet: features must hold positive ints and 'M', got {config['features']}")
    if any(not isinstance(w, int) or w < 1 for w in config["classifier"]):
        raise ValueError(f"vgg_imagenet: classifier widths must be positive ints, got {config['classifier']}")
    if not 0.0 <= config["dropout"] < 1.0:
        raise ValueError(f"vgg_imagenet: dropout must be in [0, 1), got {config['dropout']}")
    if config.get("head", "fc") not in ("fc", "gap") or (config.get("head") == "gap" and config["classifier"]):
        raise ValueError("vgg_imagenet: head must be 'fc', or 'gap' with no hidden classifier layers")


def build_vgg(spec: ArchSpec) -> nn.Module:
    """Build family ``vgg_imagenet``.

    Config layout (a pruning step edits the numbers in ``features`` and ``classifier`` and rebuilds):
      - ``features``: conv output widths in order, "M" = 2x2/2 max-pool (e.g. VGG-11 "A": [64, "M", 128, "M", ...])
      - ``batch_norm``: BatchNorm2d after every conv (convs always have a bias)
      - ``classifier``: hidden Linear widths ([4096, 4096]); input = last conv width * 7 * 7
      - ``classifier_bn``: BatchNorm1d after every hidden Linear (slimming VGG-11)
      - ``dropout``: Dropout probability after every hidden ReLU (0.5 torchvision, 0 = none)
      - ``head`` (optional, absent = "fc"): "gap" = ThiNet's global-average-pool head, AvgPool(14, stride 2) on the
        last conv's 14x14 map (``features`` then end without a pool) and one Linear (``classifier`` empty)
      - ``init``: see :func:`rethink.arch.imagenet_common.init_weights`
    """
    check_vgg_config(spec.config)
    model = ImageNetVGG(spec.config, spec.num_classes)
    init_weights(model, spec.config["init"])
    return model


def channel_groups(config: dict[str, Any]) -> list[GroupSlot]:
    """Every conv and hidden Linear, in order."""
    conv_bn, fc_bn = config["batch_norm"], config["classifier_bn"]
    layers, index = [], 0
    for position, width in enumerate(config["features"]):
        if width != POOL:
            bn = f"features.{index + 1}" if conv_bn else None
            layers.append(Layer(f"features.{index}", bn, "conv", ("features", position), width))
        index += 1 if width == POOL else 2 + conv_bn  # conv, [BN], ReLU
    gap = config.get("head", "fc") == "gap"
    index, fan = 0, 1 if gap else POOLED_SIZE * POOLED_SIZE  # the first Linear reads each channel's 7x7 map
    for position, width in enumerate(config["classifier"]):
        bn = f"classifier.{index + 1}" if fc_bn else None
        layers.append(Layer(f"classifier.{index}", bn, "linear", ("classifier", position), width, fan))
        index, fan = index + 2 + fc_bn + (config["dropout"] > 0), 1  # Linear, [BN1d], ReLU, [Dropout]
    return chain(layers, (f"classifier.{index}", fan))


VGG11_CLASSIFIERS = {  # vgg11_bn's classifier option: BN1d, dropout, BN gamma init
    "slimming": (True, 0.0, 0.5),  # the network-slimming ImageNet VGG-11 (the paper's)
    "torchvision": (False, 0.5, 1.0),  # torchvision's vgg11_bn, whose ImageNet weights it can import
}


def vgg11_bn_spec(num_classes: int, **options: Any) -> ArchSpec:
    """VGG-11 with BN2d: network slimming's, with a BN1d classifier, no dropout and BN gamma 0.5, or with
    ``classifier=torchvision`` torchvision's ``vgg11_bn`` (options: width_multiplier, classifier)."""
    opts = resolve_options("vgg11_bn", options, {"width_multiplier": 1.0, "classifier": "slimming"})
    if opts["classifier"] not in VGG11_CLASSIFIERS:
        raise ValueError(
            f"model 'vgg11_bn': classifier must be one of {', '.join(VGG11_CLASSIFIERS)}, got {opts['classifier']!r}"
        )
    classifier_bn, dropout, bn_weight = VGG11_CLASSIFIERS[opts["classifier"]]
    config = vgg_config("A", opts["width_multiplier"], True, classifier_bn, dropout, bn_weight)
    return ArchSpec(FAMILY, num_classes, config)


def vgg16_imagenet_spec(num_classes: int, **options: Any) -> ArchSpec:
    """torchvision VGG-16 without BN (ThiNet/regression base; options: width_multiplier)."""
    opts = resolve_options("vgg16_imagenet", options, {"width_multiplier": 1.0})
    config = vgg_config(
        "D", opts["width_multiplier"], batch_norm=False, classifier_bn=False, dropout=0.5, bn_weight=1.0
    )
    return ArchSpec(FAMILY, num_classes, config)


def vgg16_bn_spec(num_classes: int, **options: Any) -> ArchSpec:
    """torchvision VGG-16-BN (weight-level pruning base; options: width_multiplier)."""
    opts = resolve_options("vgg16_bn", options, {"width_multiplier": 1.0})
    config = vgg_config("D", opts["width_multiplier"], batch_norm=True, classifier_bn=False, dropout=0.5, bn_weight=1.0)
    return ArchSpec(FAMILY, num_classes, config)


FAMILY = "vgg_imagenet"
register_family(
    Family(
        FAMILY,
        build_vgg,
        channel_groups=channel_groups,
        filter_numbering=lambda config: vgg_numbering(config["features"], 3 if config["batch_norm"] else 2),
    )
)
register_model(
    "vgg11_bn", "imagenet", vgg11_bn_spec, "VGG-11 with BN2d + BN1d classifier, slimming base (132.9M params)"
)
register_model(
    "vgg16_imagenet", "imagenet", vgg16_imagenet_spec, "VGG-16 without BN, ThiNet/regression base (138.4M params)"
)
register_model("vgg16_bn", "imagenet", vgg16_bn_spec, "torchvision VGG-16-BN, weight-level base (138.4M params)")
