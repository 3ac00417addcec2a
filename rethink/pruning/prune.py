"""The prune stage: decide which channels to keep (the criterion) and cut them out (surgery)."""

from __future__ import annotations

import torch
from torch import nn

from rethink.arch import ArchSpec
from rethink.pruning.criteria import keep_largest, keep_random, l1_filter_scores
from rethink.pruning.surgery import group_widths, prunable_groups, shrink


def select_channels(
    model: nn.Module, large: ArchSpec, target: ArchSpec, criterion: str, seed: int
) -> dict[str, list[int]]:
    """Kept channel indices per prunable group so that ``large`` shrinks to the widths of ``target``.

    ``criterion``: "l1" keeps the filters of largest L1 norm (Li et al.); "random" keeps random ones (seeded).
    The decision depends only on the weights and the seed, so every DDP rank takes the same one.
    """
    widths = group_widths(target)
    modules = dict(model.named_modules())
    generator = torch.Generator().manual_seed(seed)
    keep: dict[str, list[int]] = {}
    for group in prunable_groups(large):
        k = widths[group.name]
        if k == group.width:
            continue
        if criterion == "l1":
            keep[group.name] = keep_largest(l1_filter_scores(modules[group.producer].weight.detach().cpu()), k)
        elif criterion == "random":
            keep[group.name] = keep_random(group.width, k, generator)
        else:
            raise ValueError(f"unknown channel criterion {criterion!r}; accepted: l1, random")
    return keep


def prune(
    model: nn.Module, large: ArchSpec, target: ArchSpec, criterion: str, seed: int
) -> tuple[dict[str, list[int]], ArchSpec, nn.Module]:
    """Select channels and build the physically pruned model with the kept weights copied."""
    keep = select_channels(model, large, target, criterion, seed)
    pruned_spec, pruned = shrink(model, large, keep)
    if pruned_spec != target:
        raise RuntimeError("surgery produced a spec different from the pruning target")  # an internal invariant
    return keep, pruned_spec, pruned
