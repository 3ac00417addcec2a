"""Small building blocks shared by the CIFAR models: channel selection and the paper's initialisers."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


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
        self.register_buffer("indices", torch.tensor(kept, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.indices)

    def extra_repr(self) -> str:
        return f"{self.num_channels} -> {self.indices.numel()}"


def init_weights(model: nn.Module, conv_init: str, bn_gamma: float, linear_init: str) -> None:
    """He-style initialisation of paper-spec §2.5.

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
