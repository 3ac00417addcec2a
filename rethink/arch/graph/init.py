"""The source library's own initialisation, applied to a model at whatever widths it has — so a pruned model built
from its spec starts as the library would start a network of those widths (not as a slice of a full-width one, whose
fan-scaled std is too small for thinned layers; docs/protocol.md#graph-models).

A rule is keyed by the source and the model's class name. torchvision's models initialise inline in ``__init__``,
so their rules restate those loops (each cites its file); timm's call timm's own functions. Every module is first
reset to PyTorch's default (``reset_parameters``), which is what a module the rule does not touch keeps in the
library too. ``register_init_rule`` adds a rule for another class.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Mapping

from torch import nn

InitRule = Callable[[nn.Module, Mapping[str, Any]], None]  # (model, constructor kwargs) -> None, in place

_NORMS = (nn.BatchNorm2d, nn.GroupNorm)


def _norms_one_zero(m: nn.Module, types: tuple[type, ...] = _NORMS) -> None:
    if isinstance(m, types) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _zero_bias(m: nn.Module) -> None:
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)


def _tv_resnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """torchvision/models/resnet.py ResNet.__init__ (fc keeps PyTorch's default; zero_init_residual)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        _norms_one_zero(m)
    if kwargs.get("zero_init_residual", False):
        for m in model.modules():
            last = getattr(m, "bn3", None) if hasattr(m, "conv3") else getattr(m, "bn2", None)
            if type(m).__name__ in ("Bottleneck", "BasicBlock") and last is not None and last.weight is not None:
                nn.init.zeros_(last.weight)


def _tv_mobilenet(linear: Callable[[nn.Linear], None]) -> InitRule:
    """torchvision/models/mobilenetv2.py, mobilenetv3.py, efficientnet.py: kaiming fan_out convs, ones/zeros norms,
    the classifier's Linear by ``linear``."""

    def rule(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                _zero_bias(m)
            elif isinstance(m, nn.Linear):
                linear(m)
                nn.init.zeros_(m.bias)
            _norms_one_zero(m)

    return rule


def _tv_convnext(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """torchvision/models/convnext.py ConvNeXt.__init__: truncated normal std 0.02 for convs and Linears."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            _zero_bias(m)


def _tv_vgg(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """torchvision/models/vgg.py VGG.__init__ (init_weights=True)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            _zero_bias(m)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
        _norms_one_zero(m, (nn.BatchNorm2d,))


def _tv_regnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """torchvision/models/regnet.py RegNet.__init__: normal(0, sqrt(2 / fan_out)), fan_out over groups."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.zeros_(m.bias)
        _norms_one_zero(m, (nn.BatchNorm2d,))


def _tv_defaults(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """torchvision/models/shufflenetv2.py: no loop of its own, PyTorch's defaults (already applied)."""


def _timm_resnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """timm/models/resnet.py ResNet.init_weights(zero_init_last)."""
    model.init_weights(zero_init_last=kwargs.get("zero_init_last", True))  # type: ignore[operator]


def _timm_convnext(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """timm/models/convnext.py: named_apply(_init_weights(head_init_scale))."""
    from timm.models import convnext
    from timm.models._manipulate import named_apply

    named_apply(partial(convnext._init_weights, head_init_scale=kwargs.get("head_init_scale", 1.0)), model)


def _timm_efficientnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """timm/models/_efficientnet_builder.py efficientnet_init_weights (EfficientNet, MobileNetV3)."""
    from timm.models._efficientnet_builder import efficientnet_init_weights

    efficientnet_init_weights(model)


def _timm_regnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """timm/models/regnet.py: named_apply(_init_weights(zero_init_last))."""
    from timm.models import regnet
    from timm.models._manipulate import named_apply

    named_apply(partial(regnet._init_weights, zero_init_last=kwargs.get("zero_init_last", True)), model)


INIT_RULES: dict[tuple[str, str], InitRule] = {
    ("torchvision", "ResNet"): _tv_resnet,
    ("torchvision", "MobileNetV2"): _tv_mobilenet(lambda m: nn.init.normal_(m.weight, 0, 0.01)),
    ("torchvision", "MobileNetV3"): _tv_mobilenet(lambda m: nn.init.normal_(m.weight, 0, 0.01)),
    ("torchvision", "EfficientNet"): _tv_mobilenet(
        lambda m: nn.init.uniform_(m.weight, -1.0 / math.sqrt(m.out_features), 1.0 / math.sqrt(m.out_features))
    ),
    ("torchvision", "ConvNeXt"): _tv_convnext,
    ("torchvision", "VGG"): _tv_vgg,
    ("torchvision", "RegNet"): _tv_regnet,
    ("torchvision", "ShuffleNetV2"): _tv_defaults,
    ("timm", "ResNet"): _timm_resnet,
    ("timm", "ConvNeXt"): _timm_convnext,
    ("timm", "EfficientNet"): _timm_efficientnet,
    ("timm", "MobileNetV3"): _timm_efficientnet,
    ("timm", "RegNet"): _timm_regnet,
}


def register_init_rule(source: str, class_name: str, rule: InitRule) -> None:
    """Declare how ``source`` initialises models of class ``class_name`` (needed to build them at pruned widths)."""
    INIT_RULES[(source, class_name)] = rule


def init_rule(source: str, class_name: str) -> InitRule:
    """The declared rule, or ValueError listing the classes that have one and how to add another."""
    rule = INIT_RULES.get((source, class_name))
    if rule is None:
        known = ", ".join(sorted(name for src, name in INIT_RULES if src == source))
        raise ValueError(
            f"no declared initialisation for {source} models of class {class_name} (declared: {known}); a pruned or "
            f"re-stemmed model must start as {source} would start it at its widths: declare the rule with "
            f"rethink.arch.graph.register_init_rule('{source}', '{class_name}', rule)"
        )
    return rule


def initialise(model: nn.Module, source: str, kwargs: Mapping[str, Any]) -> None:
    """Initialise ``model`` (a ``source`` model at any widths) by PyTorch's defaults, then its library's rule."""
    rule = init_rule(source, type(model).__name__)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not model:
            reset()
    rule(model, kwargs)
