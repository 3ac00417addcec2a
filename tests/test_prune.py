"""The L1 and random pruners' decisions on planted weights: L1 keeps exactly the largest filters, random the seeded
ones (docs/protocol.md#l1, #random)."""

from __future__ import annotations

import torch

from rethink.arch import build, default_spec
from rethink.arch.surgery import prunable_groups
from rethink.pruning import PruneContext, create
from rethink.pruning.l1 import FilterTargetSettings
from rethink.pruning.random import RandomSettings
from rethink.pruning.targets import l1_target_spec


def _decide(settings, model: torch.nn.Module, seed: int):
    large = default_spec("resnet56", 10)
    pruner = create(settings, "resnet56")
    return pruner.decide(PruneContext(model, large, "resnet56", seed, pruner.target(large)))


def _planted_resnet56() -> tuple[torch.nn.Module, dict[str, list[int]]]:
    """ResNet-56 whose conv1 filter norms are a known permutation per block; returns the expected B keep sets."""
    large = default_spec("resnet56", 10)
    model = build(large)
    target = l1_target_spec(large, "resnet56", "B")
    widths = {g.name: g.width for g in prunable_groups(target)}
    expected = {}
    modules = dict(model.named_modules())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for group in prunable_groups(large):
            conv = modules[group.producer]
            norms = torch.randperm(group.width, generator=g).float() + 1.0  # distinct L1 norms 1..width
            conv.weight.copy_(
                torch.sign(torch.randn(conv.weight.shape, generator=g))
                * (norms / conv.weight[0].numel()).view(-1, 1, 1, 1)
            )
            k = widths[group.name]
            if k < group.width:
                expected[group.name] = sorted(torch.argsort(norms, descending=True)[:k].tolist())
    return model, expected


def test_l1_keeps_exactly_the_largest_filters_of_every_pruned_layer() -> None:
    model, expected = _planted_resnet56()
    decision = _decide(FilterTargetSettings(variant="B"), model, seed=0)
    assert decision.keep == expected and len(decision.keep) == 21  # 27 blocks, 6 skipped (docs/protocol.md#l1)
    assert decision.spec == l1_target_spec(default_spec("resnet56", 10), "resnet56", "B")
    conv = decision.state["layer1.0.conv1.weight"]
    assert conv.shape[0] == 6 and torch.equal(conv, model.layer1[0].conv1.weight[expected["layer1.0.conv1"]])


def test_random_criterion_is_seeded_and_ignores_the_weights() -> None:
    model, _ = _planted_resnet56()
    settings = RandomSettings(variant="B")
    first = _decide(settings, model, seed=3).keep
    assert first == _decide(settings, build(default_spec("resnet56", 10)), seed=3).keep
    assert first != _decide(settings, model, seed=4).keep
