"""Scratch-B training budget (docs/protocol.md#scratch-b): stretch the epochs so a pruned model gets the large
model's FLOPs.

Pure functions of numbers. ``flops_ratio`` is FLOPs(large) / FLOPs(pruned), both per image. Every ``int(x)`` of the
reference code is reproduced as a floor that forgives floating error (``90 * 1.4`` gives 126, not 125).

Milestone rules (``rule`` argument of :func:`scratch_b_budget`):

- ``"fraction"`` (CIFAR reference code): the LR drops at ``int(epochs * f)`` for each fraction ``f``;
  ``[0.5, 0.75]`` with 243 epochs gives ``[121, 182]``.
- ``"step"`` (ImageNet reference code): ``step = int(epochs * f[0])`` and the LR drops at every multiple of the
  step inside the run, as the reference's ``lr * 0.1 ** (epoch // step)``. ``[1/3, 2/3]`` with 180 epochs gives step
  60 and ``[60, 120]``; with 106 epochs step 35 and ``[35, 70, 105]``: the reference's third drop in the last epoch
  (ResNet-34-A; -B: 118 epochs, ``[39, 78, 117]``) is kept. The fractions after the first must be whole multiples of
  it; they name the drops the paper describes and add none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

from rethink.rounding import floor

MilestoneRule = Literal["fraction", "step"]


@dataclass(frozen=True)
class Budget:
    """Epochs and LR-drop epochs of a Scratch-B run, with the FLOPs ratio and cap that produced them."""

    epochs: int
    milestones: list[int]
    flops_ratio: float
    cap: float | None
    capped: bool


def scratch_b_budget(
    base_epochs: int,
    flops_ratio: float,
    milestone_fractions: Sequence[float],
    cap: float | None = None,
    rule: MilestoneRule = "fraction",
) -> Budget:
    """Scratch-B budget: ``int(base_epochs * min(flops_ratio, cap))`` epochs and the LR drops of ``rule``.

    With a cap, a ratio at or above it trains ``int(base_epochs * cap)`` epochs (ImageNet: cap 2 -> 180 epochs,
    LR drops at 60 and 120). Milestones falling at epoch 0 or coinciding (runs of a few epochs only) are dropped.
    """
    _check_base(base_epochs)
    _check_ratio("flops_ratio", flops_ratio)
    if cap is not None:
        _check_ratio("cap", cap)
    capped = cap is not None and flops_ratio >= cap
    epochs = max(1, floor(base_epochs * (cap if capped else flops_ratio)))
    milestones = _milestones(epochs, milestone_fractions, rule)
    cap = None if cap is None else float(cap)
    return Budget(epochs=epochs, milestones=milestones, flops_ratio=float(flops_ratio), cap=cap, capped=capped)


def stretch_stages(base_milestones: Sequence[int], base_epochs: int, flops_ratio: float) -> Budget:
    """Stretch every LR stage by ``flops_ratio`` (Sparse Structure Selection's Scratch-B rule).

    Each stage before a milestone lasts ``int(length * flops_ratio)`` epochs and the run ``int(base_epochs *
    flops_ratio)``: base 100 epochs with drops at 30/60/90 and ratio 1.178 gives 117 epochs, drops [35, 70, 105].
    """
    _check_base(base_epochs)
    _check_ratio("flops_ratio", flops_ratio)
    bounds = [0, *base_milestones]
    if not _increasing(bounds) or bounds[-1] >= base_epochs:
        raise ValueError(
            f"base_milestones must be increasing epochs inside (0, {base_epochs}), got {list(base_milestones)}"
        )
    epochs = max(1, floor(base_epochs * flops_ratio))
    milestones, at = [], 0
    for start, end in zip(bounds, bounds[1:]):
        at += floor((end - start) * flops_ratio)
        milestones.append(at)
    milestones = _inside(milestones, epochs)
    return Budget(epochs=epochs, milestones=milestones, flops_ratio=float(flops_ratio), cap=None, capped=False)


def _milestones(epochs: int, fractions: Sequence[float], rule: MilestoneRule) -> list[int]:
    """LR-drop epochs of a run of ``epochs`` epochs under ``rule`` (see the module docstring)."""
    if any(not 0 < f < 1 for f in fractions) or not _increasing(fractions):
        raise ValueError(f"milestone_fractions must be increasing values in (0, 1), got {list(fractions)}")
    if rule == "fraction":
        return _inside([floor(epochs * f) for f in fractions], epochs)
    if rule == "step":
        if not fractions:
            raise ValueError("rule 'step' needs at least one milestone fraction (the first one sets the step)")
        multiples = [f / fractions[0] for f in fractions]
        if any(abs(m - round(m)) > 1e-6 for m in multiples):
            raise ValueError(
                f"rule 'step' needs milestone_fractions that are whole multiples of the first, got {list(fractions)}"
            )
        step = floor(epochs * fractions[0])
        return _inside(list(range(step, epochs, step)) if step else [], epochs)
    raise ValueError(f"unknown milestone rule {rule!r}; accepted: 'fraction', 'step'")


def _inside(milestones: list[int], epochs: int) -> list[int]:
    """The distinct milestones strictly inside a run of ``epochs`` epochs, in order."""
    return sorted({m for m in milestones if 0 < m < epochs})


def _increasing(values: Sequence[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def _check_base(base_epochs: int) -> None:
    if isinstance(base_epochs, bool) or not isinstance(base_epochs, int) or base_epochs < 1:
        raise ValueError(f"base_epochs must be an integer >= 1, got {base_epochs!r}")


def _check_ratio(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
