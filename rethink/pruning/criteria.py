"""Channel selection criteria as pure functions on tensors: which output filters of a layer to keep."""

from __future__ import annotations

import torch
from torch import Tensor


def l1_filter_scores(weight: Tensor) -> Tensor:
    """L1 norm of every output filter: ``sum |w|`` over all dims but the first (Li et al., 2017)."""
    if weight.dim() < 2:
        raise ValueError(f"filter scores need a weight of shape (out, in, ...), got shape {tuple(weight.shape)}")
    return weight.detach().abs().flatten(1).sum(1)


def keep_largest(scores: Tensor, k: int) -> list[int]:
    """Sorted indices of the ``k`` largest scores; equal scores favour the lower index."""
    if scores.dim() != 1:
        raise ValueError(f"scores must be a 1-d tensor, got shape {tuple(scores.shape)}")
    _check_k(k, scores.numel())
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    return sorted(order[:k].tolist())


def keep_random(width: int, k: int, generator: torch.Generator) -> list[int]:
    """Sorted indices of ``k`` of ``width`` channels drawn uniformly without replacement from ``generator``."""
    _check_k(k, width)
    return sorted(torch.randperm(width, generator=generator)[:k].tolist())


def _check_k(k: int, width: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= width:
        raise ValueError(f"number of channels to keep must be an integer in [1, {width}], got {k!r}")
