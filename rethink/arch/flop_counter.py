"""FLOPs as PyTorch's own counter sees them (``torch.utils.flop_counter.FlopCounterMode``): 2 per multiply-accumulate
of every matrix product and convolution the forward pass dispatches, and nothing else. The convention of models
whose layers rethink does not declare (docs/protocol.md#flops); on the paper's models it equals 2 x ``Cost.macs``
(tests/test_cost.py checks every registered one), which is how the two conventions relate."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec


def torch_flops(model: nn.Module, input_size: int) -> int:
    """FLOPs of ``model`` for one ``3 x input_size x input_size`` image by ``FlopCounterMode`` (meta models too)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for module, mode in modes.items():
            module.training = mode
    return int(counter.get_total_flops())


def spec_torch_flops(spec: ArchSpec, input_size: int) -> int:
    """:func:`torch_flops` of the model ``spec`` describes, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build(spec)
    return torch_flops(model, input_size)
