"""Parameter and FLOP counting with the paper's convention (paper-spec §3).

FLOPs count multiplies and adds separately (2x MACs) and are gathered by forward hooks on *leaf modules* only,
so functional ops (inline pooling, channel padding, additions, concatenations) and channel selection cost
nothing. Per image (batch of one):

- Conv2d: ``(2*kh*kw*Cin/groups + bias) * Cout * Hout * Wout``; sparse: ``(2*nonzero + bias*Cout) * Hout * Wout``.
- Linear: ``2*in*out + out`` (``+ out`` only with a bias).
- BatchNorm2d: 2 per input element. ReLU: 1 per input element, every call.
- MaxPool2d / AvgPool2d: ``k*k`` per output element. Upsample: 12 per output element.
- Nothing else (BatchNorm1d, selection layers, ...).

MACs are the usual multiply-accumulate count of Conv2d and Linear only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from rethink.arch.spec import ArchSpec


@dataclass(frozen=True)
class Cost:
    """Size and compute of a model for one input image."""

    params: int
    macs: int
    flops: int


def count_params(model: nn.Module) -> int:
    """Number of parameter entries (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


def _nonzero(weight: Tensor) -> int:
    if weight.is_meta:
        raise ValueError("sparse counting needs real weights, not meta tensors")
    return int(torch.count_nonzero(weight).item())


def _conv_cost(conv: nn.Conv2d, out: Tensor, sparse: bool) -> tuple[int, int]:
    """(macs, flops) of a Conv2d for one image producing ``out``."""
    positions = out.shape[-1] * out.shape[-2]
    has_bias = conv.bias is not None
    if sparse:
        nonzero = _nonzero(conv.weight)
        return nonzero * positions, (2 * nonzero + has_bias * conv.out_channels) * positions
    kh, kw = _pair(conv.kernel_size)
    per_output = kh * kw * conv.in_channels // conv.groups
    outputs = conv.out_channels * positions
    return per_output * outputs, (2 * per_output + has_bias) * outputs


def _linear_cost(linear: nn.Linear, inp: Tensor) -> tuple[int, int]:
    """(macs, flops) of a Linear for one image (``inp`` may carry extra leading dims)."""
    rows = inp.numel() // inp.shape[0] // linear.in_features
    macs = linear.in_features * linear.out_features * rows
    bias = linear.out_features * rows if linear.bias is not None else 0
    return macs, 2 * macs + bias


def _module_cost(module: nn.Module, inp: Tensor, out: Tensor, sparse: bool) -> tuple[int, int]:
    """(macs, flops) of one call of a leaf module, for one image (batch dimension removed)."""
    if isinstance(module, nn.Conv2d):
        return _conv_cost(module, out[0], sparse)
    if isinstance(module, nn.Linear):
        return _linear_cost(module, inp)
    per_image_in = inp[0].numel()
    if isinstance(module, nn.BatchNorm2d):
        return 0, 2 * per_image_in
    if isinstance(module, nn.ReLU):
        return 0, per_image_in
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kh, kw = _pair(module.kernel_size)
        return 0, kh * kw * out[0].numel()
    if isinstance(module, nn.Upsample):
        return 0, 12 * out[0].numel()
    return 0, 0


def _input_like(model: nn.Module, input_size: int) -> Tensor:
    """A single-image input on the model's device and dtype (CPU float32 for a parameter-free model)."""
    reference = next(iter(model.parameters()), None)
    if reference is None:
        return torch.zeros(1, 3, input_size, input_size)
    return torch.zeros(1, 3, input_size, input_size, device=reference.device, dtype=reference.dtype)


def count_cost(model: nn.Module, input_size: int, sparse: bool = False) -> Cost:
    """Params, MACs and FLOPs of ``model`` for one ``3 x input_size x input_size`` image (works on meta models)."""
    totals = {"macs": 0, "flops": 0}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor):
            macs, flops = _module_cost(module, inputs[0], output, sparse)
            totals["macs"] += macs
            totals["flops"] += flops

    modes = {module: module.training for module in model.modules()}
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(hook) for leaf in leaves]
    try:
        model.eval()
        with torch.no_grad():
            model(_input_like(model, input_size))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    return Cost(params=count_params(model), macs=totals["macs"], flops=totals["flops"])


def spec_cost(spec: "ArchSpec", input_size: int) -> Cost:
    """Dense cost of the model described by ``spec``, built on the meta device (no memory); cached."""
    return _cached_spec_cost(spec.to_json(), input_size)


@lru_cache(maxsize=256)
def _cached_spec_cost(spec_json: str, input_size: int) -> Cost:
    from rethink.arch.registry import build  # local import: the registry imports every model module
    from rethink.arch.spec import ArchSpec

    with torch.device("meta"):
        model = build(ArchSpec.from_json(spec_json))
    return count_cost(model, input_size)
