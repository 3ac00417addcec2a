"""Which training images a data-driven pruner reads (``calibration.*``): a seeded order of the training set, cut to
``batches`` batches, or class-stratified, ``images_per_class`` images of every class (ThiNet: 10 per class; He et
al.'s regression pruning: 5 per class; docs/protocol.md#thinet)."""

from __future__ import annotations

import torch

from rethink.errors import UserError


def calibration_indices(
    labels: torch.Tensor, seed: int, batches: int, batch_size: int, images_per_class: int | None = None
) -> list[torch.Tensor]:
    """Training-set indices of the calibration images, in batches of ``batch_size``: the first ``batches`` batches of
    an order seeded by ``seed`` or, with ``images_per_class``, the first that many images of every class in that
    order (kept in that order; the last batch may be smaller). UserError where a class has fewer images."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if images_per_class is None:
        return list(order[: batches * batch_size].split(batch_size))
    ordered = labels[order]
    # rank of each image among the earlier images of its class, in the seeded order
    classes, counts = ordered.unique(return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(classes, counts) if n < images_per_class]
    if short:
        c, n = short[0]
        raise UserError(
            f"calibration.images_per_class={images_per_class}: class {c} has only {n} training images "
            f"({len(short)} classes have fewer than {images_per_class}); lower calibration.images_per_class."
        )
    rank = torch.empty_like(ordered)
    for c in classes:
        where = (ordered == c).nonzero()[:, 0]
        rank[where] = torch.arange(len(where))
    return list(order[rank < images_per_class].split(batch_size))


def class_counts(labels: list[torch.Tensor]) -> dict[str, int]:
    """Images per class (label -> count) of the calibration batches' labels, as decision.json records them."""
    values, counts = torch.cat([y.cpu() for y in labels]).unique(return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, counts)}
