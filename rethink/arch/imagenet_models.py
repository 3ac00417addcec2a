"""ImageNet model table: the families and named models that :mod:`rethink.arch.registry` merges."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from rethink.arch.imagenet_common import parse_options
from rethink.arch.imagenet_resnet import build_resnet, resnet_config
from rethink.arch.imagenet_vgg import build_vgg, vgg_config
from rethink.arch.spec import ArchSpec

RESNET_FAMILY = "resnet_imagenet"
VGG_FAMILY = "vgg_imagenet"


def resnet34_spec(num_classes: int, **options: Any) -> ArchSpec:
    """ResNet-34 of the L1-norm ImageNet experiments (options: width_multiplier, branch_scale)."""
    opts = parse_options("resnet34", options, {"width_multiplier": 1.0, "branch_scale": False})
    config = resnet_config("basic", [3, 4, 6, 3], opts["width_multiplier"], downsample_bias=False)
    return ArchSpec(RESNET_FAMILY, num_classes, _with_branch_scale(config, opts["branch_scale"]))


def resnet50_spec(num_classes: int, **options: Any) -> ArchSpec:
    """ResNet-50 (options: width_multiplier, downsample_bias=True for the ThiNet/regression definition,
    branch_scale=True for Sparse Structure Selection's per-block factors)."""
    defaults = {"width_multiplier": 1.0, "downsample_bias": False, "branch_scale": False}
    opts = parse_options("resnet50", options, defaults)
    if not isinstance(opts["downsample_bias"], bool):
        raise ValueError(f"model 'resnet50': downsample_bias must be a bool, got {opts['downsample_bias']!r}")
    config = resnet_config("bottleneck", [3, 4, 6, 3], opts["width_multiplier"], opts["downsample_bias"])
    return ArchSpec(RESNET_FAMILY, num_classes, _with_branch_scale(config, opts["branch_scale"]))


def _with_branch_scale(config: dict[str, Any], on: Any) -> dict[str, Any]:
    """``config`` plus ``branch_scale: true`` when ``on``; the key is left out when off, so existing specs (and
    their JSON hashes) are unchanged."""
    if not isinstance(on, bool):
        raise ValueError(f"branch_scale must be a bool, got {on!r}")
    return {**config, "branch_scale": True} if on else config


def vgg11_bn_spec(num_classes: int, **options: Any) -> ArchSpec:
    """Network-slimming VGG-11 with BN2d and BN1d, no dropout, BN gamma 0.5 (options: width_multiplier)."""
    opts = parse_options("vgg11_bn", options, {"width_multiplier": 1.0})
    config = vgg_config("A", opts["width_multiplier"], batch_norm=True, classifier_bn=True, dropout=0.0, bn_weight=0.5)
    return ArchSpec(VGG_FAMILY, num_classes, config)


def vgg16_imagenet_spec(num_classes: int, **options: Any) -> ArchSpec:
    """torchvision VGG-16 without BN (ThiNet/regression base; options: width_multiplier)."""
    opts = parse_options("vgg16_imagenet", options, {"width_multiplier": 1.0})
    config = vgg_config(
        "D", opts["width_multiplier"], batch_norm=False, classifier_bn=False, dropout=0.5, bn_weight=1.0
    )
    return ArchSpec(VGG_FAMILY, num_classes, config)


def vgg16_bn_spec(num_classes: int, **options: Any) -> ArchSpec:
    """torchvision VGG-16-BN (weight-level pruning base; options: width_multiplier)."""
    opts = parse_options("vgg16_bn", options, {"width_multiplier": 1.0})
    config = vgg_config("D", opts["width_multiplier"], batch_norm=True, classifier_bn=False, dropout=0.5, bn_weight=1.0)
    return ArchSpec(VGG_FAMILY, num_classes, config)


FAMILIES: dict[str, Callable[[ArchSpec], nn.Module]] = {RESNET_FAMILY: build_resnet, VGG_FAMILY: build_vgg}

MODELS: dict[str, tuple[str, Callable[..., ArchSpec], str]] = {
    "resnet34": ("imagenet", resnet34_spec, "ResNet-34, torchvision layout, L1-norm base (21.8M params)"),
    "resnet50": ("imagenet", resnet50_spec, "ResNet-50, torchvision layout; downsample_bias=True = ThiNet/regression"),
    "vgg11_bn": ("imagenet", vgg11_bn_spec, "VGG-11 with BN2d + BN1d classifier, slimming base (132.9M params)"),
    "vgg16_imagenet": ("imagenet", vgg16_imagenet_spec, "VGG-16 without BN, ThiNet/regression base (138.4M params)"),
    "vgg16_bn": ("imagenet", vgg16_bn_spec, "torchvision VGG-16-BN, weight-level base (138.4M params)"),
}
