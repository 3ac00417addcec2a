"""Scratch-B budget rule (paper-spec §1.2): epochs and LR milestones from a FLOPs ratio."""

from __future__ import annotations

import re
from typing import Callable

import pytest

from rethink.pipeline.budget import Budget, scratch_b_budget, stretch_stages
from rethink.rounding import floor

CIFAR = (0.5, 0.75)
IMAGENET = (1 / 3, 2 / 3)


@pytest.mark.parametrize(
    ("ratio", "epochs", "milestones"),
    [
        (1.5190, 243, [121, 182]),  # VGG-16-A
        (1.1157, 178, [89, 133]),  # ResNet-56-A
        (1.3791, 220, [110, 165]),  # ResNet-56-B
        (1.1883, 190, [95, 142]),  # ResNet-110-A
        (1.6273, 260, [130, 195]),  # ResNet-110-B
    ],
)
def test_cifar_budgets_of_the_paper(ratio: float, epochs: int, milestones: list[int]) -> None:
    budget = scratch_b_budget(160, ratio, CIFAR)
    assert budget == Budget(epochs=epochs, milestones=milestones, flops_ratio=ratio, cap=None, capped=False)


def test_cifar_has_no_cap() -> None:
    budget = scratch_b_budget(160, 5.0, CIFAR)
    assert (budget.epochs, budget.milestones, budget.capped) == (800, [400, 600], False)


@pytest.mark.parametrize(
    ("ratio", "epochs", "milestones"),
    [(1.1816, 106, [35, 70, 105]), (1.3164, 118, [39, 78, 117]), (1.0, 90, [30, 60])],  # ResNet-34-A, -B, unpruned
)
def test_imagenet_budgets_below_the_cap(ratio: float, epochs: int, milestones: list[int]) -> None:
    budget = scratch_b_budget(90, ratio, IMAGENET, cap=2.0, rule="step")
    assert (budget.epochs, budget.milestones, budget.capped) == (epochs, milestones, False)


@pytest.mark.parametrize("ratio", [2.0, 2.5, 7.3])
def test_imagenet_cap_gives_180_epochs_with_steps_of_60(ratio: float) -> None:
    budget = scratch_b_budget(90, ratio, IMAGENET, cap=2, rule="step")
    assert budget == Budget(epochs=180, milestones=[60, 120], flops_ratio=ratio, cap=2.0, capped=True)


def test_step_rule_uses_whole_multiples_of_the_step() -> None:
    # 107 epochs: step int(107/3) = 35 -> [35, 70, 105], while the fraction rule gives int(107*2/3) = 71
    assert scratch_b_budget(107, 1.0, IMAGENET, rule="step").milestones == [35, 70, 105]
    assert scratch_b_budget(107, 1.0, IMAGENET).milestones == [35, 71]


@pytest.mark.parametrize("epochs", [90, 105, 106, 118, 134, 141, 179, 180])
def test_step_rule_gives_the_reference_learning_rate_every_epoch(epochs: int) -> None:
    """imagenet/*/main_B.py: ``lr = 0.1 * 0.1 ** (epoch // int(epochs / 3))`` for epoch in range(epochs)."""
    step = int(epochs / 3)
    milestones = scratch_b_budget(epochs, 1.0, IMAGENET, rule="step").milestones
    ours = [0.1 * 0.1 ** sum(epoch >= m for m in milestones) for epoch in range(epochs)]
    reference = [0.1 * 0.1 ** (epoch // step) for epoch in range(epochs)]
    assert ours == pytest.approx(reference, rel=1e-12)


def test_floating_error_is_forgiven() -> None:
    assert floor(90 * (1 / 3)) == 30 and floor(3 * (0.3 / 0.1 / 3)) == 3  # 2.9999999999999996
    assert scratch_b_budget(90, 1.4, IMAGENET).epochs == 126  # 90 * 1.4 = 125.99999999999999
    assert scratch_b_budget(100, 1.15, CIFAR).epochs == 115  # 114.99999999999999
    assert scratch_b_budget(100, 1.0, (0.29, 0.57)).milestones == [29, 57]  # 28.999999999999996, 56.99999999999999
    assert scratch_b_budget(100, 0.5, IMAGENET, cap=0.29).epochs == 29  # capped: 100 * 0.29
    assert scratch_b_budget(90, 1.0, (0.3333333333333333, 0.6666666666666666)).milestones == [30, 60]


def test_epochs_are_floored_not_rounded() -> None:
    assert scratch_b_budget(160, 1.0999, CIFAR).epochs == 175  # 175.98


def test_ratio_below_one_shrinks_the_run() -> None:
    assert scratch_b_budget(160, 0.5, CIFAR) == Budget(80, [40, 60], 0.5, None, False)


@pytest.mark.parametrize(("base", "ratio"), [(160, 1.519), (90, 1.18), (3, 1.0), (2, 1.0), (1, 1.0), (1, 0.01)])
def test_milestones_are_distinct_and_strictly_inside_the_run(base: int, ratio: float) -> None:
    for budget in (scratch_b_budget(base, ratio, CIFAR), scratch_b_budget(base, ratio, IMAGENET, rule="step")):
        assert budget.epochs >= 1
        assert all(0 < m < budget.epochs for m in budget.milestones)
        assert budget.milestones == sorted(set(budget.milestones))


def test_tiny_runs_drop_degenerate_milestones() -> None:
    assert scratch_b_budget(2, 1.0, CIFAR).milestones == [1]
    assert scratch_b_budget(1, 1.0, CIFAR).milestones == []


@pytest.mark.parametrize(
    ("ratio", "epochs", "milestones"),
    [(1.178, 117, [35, 70, 105]), (1.451, 145, [43, 86, 129]), (1.796, 179, [53, 106, 159])],  # ResNet-41/32/26
)
def test_sss_stretches_every_stage(ratio: float, epochs: int, milestones: list[int]) -> None:
    budget = stretch_stages([30, 60, 90], 100, ratio)
    assert budget == Budget(epochs=epochs, milestones=milestones, flops_ratio=ratio, cap=None, capped=False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: scratch_b_budget(160, 0.0, CIFAR), "flops_ratio must be a finite number > 0, got 0.0"),
        (lambda: scratch_b_budget(160, -1.2, CIFAR), "flops_ratio must be a finite number > 0"),
        (lambda: scratch_b_budget(160, float("nan"), CIFAR), "flops_ratio must be a finite number > 0"),
        (lambda: scratch_b_budget(0, 1.5, CIFAR), "base_epochs must be an integer >= 1, got 0"),
        (lambda: scratch_b_budget(160.0, 1.5, CIFAR), "base_epochs must be an integer >= 1, got 160.0"),
        (lambda: scratch_b_budget(90, 1.5, IMAGENET, cap=0), "cap must be a finite number > 0, got 0"),
        (lambda: scratch_b_budget(160, 1.5, (0.75, 0.5)), "milestone_fractions must be increasing values in (0, 1)"),
        (lambda: scratch_b_budget(160, 1.5, (0.5, 1.0)), "milestone_fractions must be increasing values in (0, 1)"),
        (lambda: scratch_b_budget(160, 1.5, CIFAR, rule="step"), "whole multiples of the first"),
        (lambda: scratch_b_budget(160, 1.5, (), rule="step"), "rule 'step' needs at least one milestone fraction"),
        (lambda: scratch_b_budget(160, 1.5, CIFAR, rule="cosine"), "unknown milestone rule 'cosine'"),
        (lambda: stretch_stages([30, 30, 90], 100, 1.2), "base_milestones must be increasing epochs inside (0, 100)"),
        (lambda: stretch_stages([30, 60, 100], 100, 1.2), "base_milestones must be increasing epochs inside (0, 100)"),
        (lambda: stretch_stages([30, 60, 90], 100, 0), "flops_ratio must be a finite number > 0"),
    ],
)
def test_bad_inputs_are_rejected(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
