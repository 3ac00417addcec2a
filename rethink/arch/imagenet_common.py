"""The initialisation shared by the ImageNet families (He family, torchvision layout; docs/protocol.md#init)."""

from __future__ import annotations

from typing import Any

from torch import nn

CONV_BIAS_INITS = ("zero", "pytorch_default")
LINEAR_INITS = ("normal_0.01", "pytorch_default")


def init_config(conv_bias: str, bn_weight: float, linear: str) -> dict[str, Any]:
    """The ``init`` field of a spec: conv weights are always N(0, sqrt(2 / (k*k*out))) (He, fan-out)."""
    return {"conv": "he_fan_out", "conv_bias": conv_bias, "bn_weight": bn_weight, "linear": linear}


def check_init(init: dict[str, Any]) -> None:
    """Raise ValueError for an ``init`` field that :func:`init_weights` cannot apply."""
    expected = init_config("zero", 1.0, "pytorch_default")
    if set(init) != set(expected):
        raise ValueError(f"init must have exactly the keys {sorted(expected)}, got {sorted(init)}")
    if init["conv"] != "he_fan_out":
        raise ValueError(f"init.conv must be 'he_fan_out', got {init['conv']!r}")
    if init["conv_bias"] not in CONV_BIAS_INITS:
        raise ValueError(f"init.conv_bias must be one of {CONV_BIAS_INITS}, got {init['conv_bias']!r}")
    if init["linear"] not in LINEAR_INITS:
        raise ValueError(f"init.linear must be one of {LINEAR_INITS}, got {init['linear']!r}")


def init_weights(model: nn.Module, init: dict[str, Any]) -> None:
    """Initialise ``model`` in place as described by ``init`` (docs/protocol.md#init).

    Conv: He normal with fan-out (std sqrt(2 / (k*k*out))); conv bias zero or PyTorch default;
    BatchNorm (1d and 2d): weight ``bn_weight``, bias 0; Linear: N(0, 0.01) with zero bias, or PyTorch default.
    """
    check_init(init)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None and init["conv_bias"] == "zero":
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.constant_(module.weight, float(init["bn_weight"]))
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and init["linear"] == "normal_0.01":
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def add_stem(model: nn.Module, width: int) -> None:
    """The ImageNet ResNet stem as ``model``'s ``conv1`` (7x7/2, no bias), ``bn1``, ``relu`` and ``maxpool`` (3x3/2)."""
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.relu = nn.ReLU(inplace=True)
    model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
