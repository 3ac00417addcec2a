"""Building blocks shared by the families: model options, width scaling, conv and channel-selection layers, the
CIFAR initialisers (docs/protocol.md#init)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from rethink.arch.cost import no_cost

POOL = "M"  # a 2x2 max-pool in a VGG width list


def resolve_options(model: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``options``; an unknown option or a bad ``width_multiplier`` is a ValueError naming it."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"model '{model}' got unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(defaults))}"
        )
    resolved = {**defaults, **options}
    multiplier = resolved["width_multiplier"]
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not multiplier > 0:
        raise ValueError(f"model '{model}': width_multiplier must be > 0, got {multiplier!r}")
    return resolved


def scaled(width: int, multiplier: float) -> int:
    """A default width scaled by ``multiplier``: rounded, at least 1."""
    return max(1, round(width * multiplier))


def conv(cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """A square conv with "same" padding."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)


class ChannelSelection(nn.Module):
    """Keeps only the listed input channels (network slimming's ``channel_selection``).

    The kept indices are a long *buffer* (saved in the state_dict, never trained and not counted as parameters);
    the layer placed after a full-size BN lets the following conv read a subset of a shared channel stream.
    """

    indices: Tensor

    def __init__(self, num_channels: int, indices: Sequence[int]) -> None:
        super().__init__()
        kept = [int(i) for i in indices]
        if not kept or sorted(set(kept)) != kept or kept[0] < 0 or kept[-1] >= num_channels:
            raise ValueError(f"selection indices must be sorted, unique, non-empty and < {num_channels}: {kept}")
        self.num_channels = num_channels
        self.reference_params = num_channels  # the reference code's selection is a parameter vector over the stream
        self.register_buffer("indices", torch.tensor(kept, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.indices)

    def extra_repr(self) -> str:
        return f"{self.num_channels} -> {self.indices.numel()}"


SELECTION_COSTS = {ChannelSelection: no_cost}  # an index_select: not counted (docs/protocol.md#flops)


def selection_layer(num_channels: int, indices: Sequence[int] | None) -> ChannelSelection | None:
    """A selection of ``indices`` out of ``num_channels``, or None for no selection."""
    return None if indices is None else ChannelSelection(num_channels, indices)


def check_selection(where: str, full: int, width: int, indices: Sequence[int] | None) -> None:
    """A conv reading a ``full``-channel stream with ``width`` inputs needs ``width`` selected indices (or none)."""
    if indices is None and width != full:
        raise ValueError(f"{where}: input width {width} != stream width {full} and no channel selection")
    if indices is not None and len(indices) != width:
        raise ValueError(f"{where}: input width {width} != {len(indices)} selected channels")


def init_options(conv_init: str, bn_gamma: float, linear_init: str) -> dict[str, Any]:
    """The initialisation entries of a CIFAR spec config (see :func:`init_weights`)."""
    return {"conv_init": conv_init, "bn_gamma": bn_gamma, "linear_init": linear_init}


def init_from_config(model: nn.Module, config: dict[str, Any]) -> None:
    """Initialise ``model`` with the initialisation entries of its CIFAR spec config."""
    init_weights(model, config["conv_init"], config["bn_gamma"], config["linear_init"])


def init_weights(model: nn.Module, conv_init: str, bn_gamma: float, linear_init: str) -> None:
    """He-style initialisation of the CIFAR models (docs/protocol.md#init).

    conv_init: "fan_out" (N(0, sqrt(2/(k*k*out)))) or "fan_in" (k*k*in); conv bias 0.
    bn_gamma: BatchNorm2d weight (bias 0); BatchNorm1d keeps PyTorch defaults.
    linear_init: "normal" (N(0, 0.01), bias 0) or "default" (PyTorch's own).
    """
    if conv_init not in ("fan_out", "fan_in"):
        raise ValueError(f"conv_init must be 'fan_out' or 'fan_in', got {conv_init!r}")
    if linear_init not in ("normal", "default"):
        raise ValueError(f"linear_init must be 'normal' or 'default', got {linear_init!r}")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels if conv_init == "fan_out" else module.in_channels
            fan = module.kernel_size[0] * module.kernel_size[1] * channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, bn_gamma)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear_init == "normal":
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
