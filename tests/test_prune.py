"""The prune step end to end on planted weights: L1 keeps exactly the largest filters, random the seeded ones."""

from __future__ import annotations

import torch

from rethink.arch import build, default_spec
from rethink.pruning.prune import prune, select_channels
from rethink.pruning.surgery import prunable_groups
from rethink.pruning.targets import l1_target_spec


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
    large = default_spec("resnet56", 10)
    keep, spec, pruned = prune(model, large, l1_target_spec(large, "resnet56", "B"), "l1", seed=0)
    assert keep == expected and len(keep) == 21  # 27 blocks, 6 skipped (paper-spec §5.1)
    assert pruned.layer1[0].conv1.weight.shape[0] == 6
    assert torch.equal(pruned.layer1[0].conv1.weight, model.layer1[0].conv1.weight[expected["layer1.0.conv1"]])


def test_random_criterion_is_seeded_and_ignores_the_weights() -> None:
    model, _ = _planted_resnet56()
    large = default_spec("resnet56", 10)
    target = l1_target_spec(large, "resnet56", "B")
    first = select_channels(model, large, target, "random", seed=3)
    assert first == select_channels(build(large), large, target, "random", seed=3)
    assert first != select_channels(model, large, target, "random", seed=4)
