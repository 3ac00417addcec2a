"""FLOPs as PyTorch's own counter sees them (``torch.utils.flop_counter.FlopCounterMode``): 2 per multiply-accumulate
of every matrix product and convolution the forward pass dispatches, and nothing else. The convention of models
whose layers rethink does not declare (the graph family; docs/protocol.md#flops); on the paper's models it equals
2 x ``Cost.macs`` (tests/test_cost.py checks every registered one), which is how the two conventions relate."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rethink.arch.cost import Cost, count_params
from rethink.arch.spec import ArchSpec

CONVENTION = "torch_flop_counter"


def _count(model: nn.Module, input_size: int) -> tuple[int, int]:
    """(FLOPs, FLOPs of the zero conv weights) of ``model`` for one image; its train/eval modes are restored."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    modes = {module: module.training for module in model.modules()}
    zeros = [0]

    def hook(conv: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if not conv.weight.is_meta:  # each weight is used once per output position
            zeros[0] += 2 * int((conv.weight == 0).sum()) * output.shape[-1] * output.shape[-2]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    return int(counter.get_total_flops()), zeros[0]


def torch_flops(model: nn.Module, input_size: int) -> int:
    """FLOPs of ``model`` for one ``3 x input_size x input_size`` image by ``FlopCounterMode`` (meta models too)."""
    return _count(model, input_size)[0]


def torch_cost(model: nn.Module, input_size: int, sparse: bool = False) -> Cost:
    """:class:`Cost` by ``FlopCounterMode`` (MACs = FLOPs / 2); ``sparse``: zero conv weights cost nothing."""
    flops, zero = _count(model, input_size)
    flops -= zero if sparse else 0
    params = count_params(model)
    return Cost(params=params, macs=flops // 2, flops=flops, reference_params=params, convention=CONVENTION)


def spec_torch_flops(spec: ArchSpec, input_size: int) -> int:
    """:func:`torch_flops` of the model ``spec`` describes, built on the meta device (no memory)."""
    from rethink.arch.registry import build

    with torch.device("meta"):
        model = build(spec)
    return torch_flops(model, input_size)
