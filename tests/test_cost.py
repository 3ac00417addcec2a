"""Parameter/FLOP counter (paper-spec §3) on hand-counted tiny models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch import MODELS, build, default_spec, spec_cost
from rethink.arch.cost import Cost, count_cost, count_params
from rethink.arch.flop_counter import spec_torch_flops, torch_flops


class TinyNet(nn.Module):
    """conv3x3(3->4) - BN - ReLU - maxpool 2 - functional avgpool 2 (not counted) - Linear(16 -> 5), on 8x8 input."""

    def __init__(self, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 2), 1))


# Hand count on 8x8 input: conv output 4x8x8 = 256 elements, each 3*3*3 = 27 MACs.
CONV_MACS = 27 * 256  # 6912
CONV_FLOPS = 2 * CONV_MACS  # 13824
BN_FLOPS = 2 * 256
RELU_FLOPS = 256
POOL_FLOPS = 2 * 2 * (4 * 4 * 4)  # k*k per output element
FC_MACS = 16 * 5
FC_FLOPS = 2 * FC_MACS + 5
TINY_PARAMS = 4 * 27 + 2 * 4 + 16 * 5 + 5


def test_count_params_excludes_buffers() -> None:
    assert count_params(TinyNet()) == TINY_PARAMS == 201


def test_tiny_net_hand_count() -> None:
    cost = count_cost(TinyNet(), 8)
    assert cost == Cost(
        params=TINY_PARAMS,
        macs=CONV_MACS + FC_MACS,
        flops=CONV_FLOPS + BN_FLOPS + RELU_FLOPS + POOL_FLOPS + FC_FLOPS,
        reference_params=TINY_PARAMS,  # no channel selection: the reference count is the same
    )
    assert cost.flops == 15013 and cost.macs == 6992


@pytest.mark.parametrize(
    ("model", "params", "reference"), [("preresnet164", 1_703_258, 1_711_338), ("densenet40", 1_059_298, 1_068_658)]
)
def test_reference_count_includes_the_selection_vectors(model: str, params: int, reference: int) -> None:
    """The reference code's selection is a parameter vector over the whole stream (docs/protocol.md#model-numbers)."""
    cost = spec_cost(default_spec(model, 10), 32)
    assert (cost.params, cost.reference_params) == (params, reference)


def test_conv_bias_adds_one_flop_per_output() -> None:
    assert count_cost(TinyNet(bias=True), 8).flops == count_cost(TinyNet(), 8).flops + 256


def test_grouped_conv() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
    cost = count_cost(nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), conv), 4)
    assert cost.macs == 3 * 4 * 16 + 3 * 3 * 2 * 6 * 16
    assert cost.flops == 2 * cost.macs


@pytest.mark.parametrize("bias", [False, True])
def test_sparse_counts_nonzero_weights(bias: bool) -> None:
    model = TinyNet(bias=bias)
    with torch.no_grad():
        model.conv.weight[0].zero_()  # 27 of 108 weights
        model.conv.weight[1, 0].zero_()  # 9 more
    nonzero = 108 - 27 - 9
    dense, sparse = count_cost(model, 8), count_cost(model, 8, sparse=True)
    conv_bias = 256 if bias else 0
    assert dense.flops == CONV_FLOPS + conv_bias + BN_FLOPS + RELU_FLOPS + POOL_FLOPS + FC_FLOPS
    assert sparse.flops == dense.flops - CONV_FLOPS + 2 * nonzero * 64
    assert sparse.macs == nonzero * 64 + FC_MACS
    assert sparse.params == dense.params


def test_sparse_equals_dense_without_zeros() -> None:
    model = TinyNet(bias=True)
    assert count_cost(model, 8, sparse=True) == count_cost(model, 8)


class ReusedReLU(nn.Module):
    """One ReLU module called twice: counted once per call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.relu(self.conv(x)) - 1.0)


def test_relu_reuse_counted_per_call() -> None:
    cost = count_cost(ReusedReLU(), 4)
    assert cost.flops == 2 * 3 * 2 * 16 + 2 * (2 * 16)


def test_training_modes_restored() -> None:
    model = TinyNet().train()
    model.bn.eval()
    count_cost(model, 8)
    assert model.training and model.conv.training and not model.bn.training


def test_hooks_removed() -> None:
    model = TinyNet()
    count_cost(model, 8)
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", ["resnet56", "densenet40", "preresnet164"])
def test_meta_build_matches_real_build(name: str) -> None:
    spec = default_spec(name, 10, width_multiplier=0.5)
    assert spec_cost(spec, 32) == count_cost(build(spec), 32)


def test_spec_cost_is_cached() -> None:
    spec = default_spec("resnet56", 10)
    assert spec_cost(spec, 32) is spec_cost(spec, 32)
    assert spec_cost(spec, 32).params == 853_018


PAPER_MODELS = sorted(name for name, info in MODELS.items() if info.domain in ("cifar", "imagenet"))


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_torchs_flop_counter_is_twice_the_macs_on_every_paper_model(name: str) -> None:
    """FlopCounterMode counts 2 per multiply-accumulate of convolutions and matrix products only: on the paper's
    models exactly 2 x Cost.macs (conv and linear MACs), the bridge between the two FLOP conventions."""
    info = MODELS[name]
    spec = default_spec(name, 1000 if info.domain == "imagenet" else 10)
    assert spec_torch_flops(spec, info.input_size) == 2 * spec_cost(spec, info.input_size).macs


def test_torchs_flop_counter_sees_a_hand_counted_net() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    assert torch_flops(net, 8) == 2 * (3 * 9 * 4 * 8 * 8 + 4 * 8 * 8 * 5)
