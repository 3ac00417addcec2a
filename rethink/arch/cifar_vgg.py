"""Family ``cifar_vgg``: the CIFAR VGGs of the L1-norm, slimming and weight-level code (docs/protocol.md#models).

Which layers are modules and which are functional follows the reference code, because the FLOP counter
(:mod:`rethink.arch.cost`) only sees registered leaf modules.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.family import Family, GroupSlot, Layer, chain, vgg_numbering
from rethink.arch.layers import POOL, conv, init_from_config, init_options, resolve_options, scaled
from rethink.arch.registry import register_family, register_model
from rethink.arch.spec import ArchSpec

Config = dict[str, Any]

VGG_CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}
MODULES_PER_CONV = 3  # conv, BN, ReLU


class CifarVGG(nn.Module):
    """CIFAR VGG: conv3x3-BN-ReLU stack with max-pools, inline 2x2 average pool, then the classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        config = spec.config
        self.features = _features(config["cfg"], config["conv_bias"])
        last = [w for w in config["cfg"] if w != POOL][-1]
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
        init_from_config(self, config)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(self.features(x), 2)  # functional: not counted (docs/protocol.md#flops)
        return self.classifier(torch.flatten(x, 1))


def _features(cfg: Sequence[int | str], bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in cfg:
        if item == POOL:
            layers.append(nn.MaxPool2d(2, 2))
        else:
            width = int(item)
            layers += [conv(channels, width, 3, bias=bias), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def build_vgg(spec: ArchSpec) -> nn.Module:
    """Family ``cifar_vgg``.

    config: ``cfg`` list of conv widths with ``"M"`` for 2x2 max-pools (4 pools: 32x32 ends at 2x2, then an inline
    2x2 average pool); ``head`` "mlp" (Linear(cfg[-1], hidden)-BN1d-ReLU-Linear) or "linear" (one Linear);
    ``hidden`` (mlp head width); ``conv_bias``; init options ``conv_init``, ``bn_gamma``, ``linear_init``.
    """
    return CifarVGG(spec)


def channel_groups(config: Config) -> list[GroupSlot]:
    """Every conv, and the hidden Linear of the mlp head: a chain ending at the classifier."""
    layers, index = [], 0
    for position, width in enumerate(config["cfg"]):
        if width != POOL:
            layers.append(Layer(f"features.{index}", f"features.{index + 1}", "conv", ("cfg", position), width))
        index += 1 if width == POOL else MODULES_PER_CONV
    if config["head"] == "linear":
        return chain(layers, ("classifier", 1))
    layers.append(Layer("classifier.0", "classifier.1", "linear", ("hidden",), config["hidden"]))
    return chain(layers, ("classifier.3", 1))


def _maker(model: str, depth: int, head: str, weight_level: bool) -> Callable[..., ArchSpec]:
    def make_spec(num_classes: int, **options: Any) -> ArchSpec:
        defaults: dict[str, Any] = {"width_multiplier": 1.0}
        if not weight_level:
            defaults["head"] = head
        opts = resolve_options(model, options, defaults)
        if opts.get("head", head) not in ("mlp", "linear"):
            raise ValueError(f"model '{model}': head must be 'mlp' or 'linear', got {opts['head']!r}")
        m = opts["width_multiplier"]
        cfg = [w if w == POOL else scaled(int(w), m) for w in VGG_CFGS[depth]]
        config: Config = {"cfg": cfg, "head": opts.get("head", head), "conv_bias": weight_level}
        if config["head"] == "mlp":
            config["hidden"] = scaled(512, m)
        init = init_options("fan_in", 1.0, "normal") if weight_level else init_options("fan_out", 0.5, "normal")
        return ArchSpec("cifar_vgg", num_classes, {**config, **init})

    return make_spec


register_family(
    Family(
        "cifar_vgg",
        build_vgg,
        channel_groups=channel_groups,
        filter_numbering=lambda config: vgg_numbering(config["cfg"], MODULES_PER_CONV),
    )
)
for _depth in (11, 13, 16, 19):
    register_model(
        f"vgg{_depth}",
        "cifar",
        _maker(f"vgg{_depth}", _depth, "mlp", False),
        f"CIFAR VGG-{_depth} (L1-norm code; head='linear': slimming version)",
    )
register_model(
    "vgg19_bn", "cifar", _maker("vgg19_bn", 19, "linear", True), "CIFAR VGG-19-BN with conv bias (weight-level)"
)
