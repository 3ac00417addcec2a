"""Parameter and FLOP counting with the paper's convention (docs/protocol.md#flops).

FLOPs count multiplies and adds separately (2x MACs) and are gathered by forward hooks on *leaf modules* only,
so functional ops (inline pooling, channel padding, additions, concatenations) cost nothing. Per image (batch of
one), by layer type:

- Conv2d: ``(2*kh*kw*Cin/groups + bias) * Cout * Hout * Wout``; sparse: ``(2*nonzero + bias*Cout) * Hout * Wout``.
- Linear: ``2*in*out + out`` (``+ out`` only with a bias).
- BatchNorm2d: 2 per input element. ReLU: 1 per input element, every call.
- MaxPool2d / AvgPool2d: ``k*k`` per output element. Upsample: 12 per output element.
- Not counted, as in the reference counter: BatchNorm1d, AdaptiveAvgPool2d, Dropout, Identity, Flatten, an empty
  Sequential.

Any other leaf layer type needs a rule: a family declares rules for its own layers (``Family.layer_costs``, e.g.
channel selection costs nothing), and counting a model with a layer type nobody declared raises ValueError naming
it, never counts it as 0. MACs are the usual multiply-accumulate count of Conv2d and Linear only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

LayerCost = Callable[[nn.Module, Tensor, Tensor], tuple[int, int]]  # (module, input, output) -> (MACs, FLOPs)


@dataclass(frozen=True)
class Cost:
    """Size and compute of a model for one input image. ``reference_params``: the parameter count of the reference
    code, which also counts the index vector of every channel selection (here a buffer; docs/protocol.md#flops).
    ``convention``: how ``flops`` was counted, ``paper`` (this module) or ``torch_flop_counter``
    (:mod:`rethink.arch.flop_counter`)."""

    params: int
    macs: int
    flops: int
    reference_params: int = 0
    convention: str = "paper"

    def flops_record(self) -> dict[str, Any]:
        """The FLOPs as result.json and the dry run record them: MACs, the count under its convention's name, and
        the convention."""
        return {"macs": self.macs, self.convention: self.flops, "convention": self.convention}


def counted_flops(record: Mapping[str, Any]) -> int:
    """The FLOPs of a :meth:`Cost.flops_record` (an older record without a convention counted ``paper``)."""
    return int(record[record.get("convention", "paper")])


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


def _linear_cost(linear: nn.Module, inp: Tensor, out: Tensor) -> tuple[int, int]:
    """(macs, flops) of a Linear for one image (``inp`` may carry extra leading dims)."""
    rows = inp.numel() // inp.shape[0] // linear.in_features
    macs = linear.in_features * linear.out_features * rows
    bias = linear.out_features * rows if linear.bias is not None else 0
    return macs, 2 * macs + bias


def _per_input(flops_per_element: int) -> LayerCost:
    return lambda module, inp, out: (0, flops_per_element * inp[0].numel())


def _pool_cost(module: nn.Module, inp: Tensor, out: Tensor) -> tuple[int, int]:
    kh, kw = _pair(module.kernel_size)
    return 0, kh * kw * out[0].numel()


def no_cost(module: nn.Module, inp: Tensor, out: Tensor) -> tuple[int, int]:
    """A layer the paper's counter does not count."""
    return 0, 0


LAYER_COSTS: dict[type, LayerCost] = {
    nn.Linear: _linear_cost,
    nn.BatchNorm2d: _per_input(2),
    nn.ReLU: _per_input(1),
    nn.MaxPool2d: _pool_cost,
    nn.AvgPool2d: _pool_cost,
    nn.Upsample: lambda module, inp, out: (0, 12 * out[0].numel()),
    **{kind: no_cost for kind in (nn.BatchNorm1d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity, nn.Flatten)},
    nn.Sequential: no_cost,  # a leaf only when empty (e.g. a stage whose every block SSS removed): the identity
}


def register_layer_cost(layer_type: type, rule: LayerCost) -> None:
    """Count layers of ``layer_type`` (and its subclasses) with ``rule``; families call it for their own layers."""
    LAYER_COSTS[layer_type] = rule


def _module_cost(module: nn.Module, inp: Tensor, out: Tensor, sparse: bool, path: str) -> tuple[int, int]:
    """(macs, flops) of one call of a leaf module, for one image."""
    if isinstance(module, nn.Conv2d):
        return _conv_cost(module, out[0], sparse)
    rule = next((LAYER_COSTS[kind] for kind in type(module).__mro__ if kind in LAYER_COSTS), None)
    if rule is None:
        raise ValueError(
            f"cannot count the FLOPs of layer '{path}' of type {type(module).__name__}: no cost rule is declared for "
            "it. Declare one in its family (Family.layer_costs) or with rethink.arch.cost.register_layer_cost."
        )
    return rule(module, inp, out)


def _input_like(model: nn.Module, input_size: int) -> Tensor:
    """A single-image input on the model's device and dtype (CPU float32 for a parameter-free model)."""
    reference = next(iter(model.parameters()), None)
    if reference is None:
        return torch.zeros(1, 3, input_size, input_size)
    return torch.zeros(1, 3, input_size, input_size, device=reference.device, dtype=reference.dtype)


def count_cost(model: nn.Module, input_size: int, sparse: bool = False) -> Cost:
    """Params, MACs and FLOPs of ``model`` for one ``3 x input_size x input_size`` image (works on meta models)."""
    totals = {"macs": 0, "flops": 0}

    def hook_for(path: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor):
                macs, flops = _module_cost(module, inputs[0], output, sparse, path)
                totals["macs"] += macs
                totals["flops"] += flops

        return hook

    modes = {module: module.training for module in model.modules()}
    leaves = [(path, m) for path, m in model.named_modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(hook_for(path)) for path, leaf in leaves]
    try:
        model.eval()
        with torch.no_grad():
            model(_input_like(model, input_size))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    params = count_params(model)
    reference = params + sum(getattr(module, "reference_params", 0) for module in model.modules())
    return Cost(params=params, macs=totals["macs"], flops=totals["flops"], reference_params=reference)
