"""pruner.round_to: kept widths aligned to multiples of N by each pruner's own criterion, requested and achieved
widths recorded, costs and Scratch-B from the aligned model, and round_to=auto from the device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_settings, run_main, run_sweep

from rethink.arch import build, default_spec, spec_cost
from rethink.arch.surgery import group_widths, prunable_groups, with_group_widths
from rethink.pipeline.budget import scratch_b_budget
from rethink.pipeline.plan import build_plan
from rethink.pruning import alignment
from rethink.pruning.alignment import aligned_width
from rethink.pruning.context import PruneContext
from rethink.pruning.l1 import group_l1_scores
from rethink.pruning.registry import create
from rethink.pruning.slimming import ThresholdCut, aligned_cut, bn_scores


@pytest.mark.parametrize(
    "width,full,n,expected",
    [
        (6, 16, 16, 16),
        (22, 32, 16, 16),
        (57, 64, 16, 64),
        (24, 64, 16, 32),
        (23, 64, 16, 16),
        (3, 10, 16, 10),
        (5, 8, 1, 5),
    ],
)
def test_aligned_width_is_the_nearest_multiple_within_bounds(width: int, full: int, n: int, expected: int) -> None:
    assert aligned_width(width, full, n) == expected


def test_resnet56_b_rounded_to_16_plans_the_rounded_model() -> None:
    settings = compose_settings(
        "dataset=cifar10", "model=resnet56", "pruner=l1", "pruner.variant=B", "pruner.round_to=16",
        "schedule=scratch_b", "dry_run=true",
    )  # fmt: skip
    plan = build_plan(settings)
    full, kept = group_widths(plan.large), group_widths(plan.pruned)
    assert all(k % 16 == 0 or k == full[name] for name, k in kept.items())
    exact = build_plan(
        compose_settings("dataset=cifar10", "model=resnet56", "pruner=l1", "pruner.variant=B", "schedule=scratch_b")
    )
    assert plan.pruned != exact.pruned
    summary = plan.pruning_summary()
    assert summary["widths"]["requested"] == group_widths(exact.pruned) and summary["widths"]["after"] == kept
    assert plan.cost("pruned")["params"] == spec_cost(plan.pruned, 32).params
    ratio = spec_cost(plan.large, 32).flops / spec_cost(plan.pruned, 32).flops
    assert summary["achieved"]["flops_ratio"] == pytest.approx(ratio, abs=1e-6)
    assert plan.budget.epochs == scratch_b_budget(160, ratio, [0.5, 0.75]).epochs
    assert plan.pruner.requested()["variant"] == "B" and settings.pruner.round_to == 16


def test_l1_rounding_keeps_the_next_highest_norms() -> None:
    large = default_spec("resnet56", 10, width_multiplier=0.5)
    torch.manual_seed(0)
    model = build(large)
    group = prunable_groups(large)[0]  # 8 filters at half width
    target = with_group_widths(large, {group.name: 5})
    settings = compose_settings("model=resnet56", "pruner=l1", "pruner.round_to=4").pruner
    pruner = create(settings, "resnet56")
    aligned = pruner.align(large, target)
    assert group_widths(aligned)[group.name] == 4
    decision = pruner.decide(PruneContext(model, large, "resnet56", seed=0, target=aligned))
    scores = group_l1_scores(model, group)
    assert decision.keep[group.name] == sorted(torch.argsort(scores, descending=True)[:4].tolist())


def test_slimming_rounding_keeps_the_next_highest_bn_scales() -> None:
    large = default_spec("vgg19", 10, width_multiplier=0.25)
    torch.manual_seed(0)
    model = build(large)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.copy_(torch.rand(bn.num_features) + 0.01)
    scores = bn_scores(model, large)
    name = next(iter(scores))
    order = torch.argsort(scores[name], descending=True).tolist()
    cut = ThresholdCut(0.0, {n: sorted(torch.argsort(s, descending=True)[:5].tolist()) for n, s in scores.items()}, [])
    aligned = aligned_cut(model, large, cut, 8)
    assert aligned.keep[name] == sorted(order[:8])  # the 5 kept and the 3 next-highest |gamma|
    assert set(cut.keep[name]) < set(aligned.keep[name])


def test_round_to_auto_is_the_device_alignment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert compose_settings("model=resnet56", "pruner=l1", "pruner.round_to=auto", "trainer=cpu").pruner.round_to == 16
    assert alignment.device_alignment({"accelerator": "cpu"})[0] == 16
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert alignment.device_alignment({"accelerator": "cpu"})[0] == 8
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compose_settings("model=resnet56", "pruner=slimming", "pruner.round_to=auto").pruner.round_to == 8
    assert alignment.device_alignment({"accelerator": "gpu"}) == (8, alignment.device_alignment({})[1])


def test_round_to_is_validated_and_unset_keeps_the_keys() -> None:
    from rethink.errors import UserError

    with pytest.raises(UserError, match="pruner.round_to"):
        compose_settings("model=resnet56", "pruner=l1", "pruner.round_to=0")
    plain = compose_settings("model=resnet56", "pruner=l1", "pruner.variant=A").pruner
    assert "round_to" not in plain.key_values() and "ratio" not in plain.key_values()


@pytest.mark.slow  # ~20 s: plans all 90 cells
def test_aligned_cifar10_dry_run_lists_every_cell() -> None:
    cells = json.loads(run_main("experiment=aligned_cifar10", "dry_run=json").stdout)["cells"]
    assert len(cells) == 5 * 3 * 2 * 3 and all(cell["plan"] for cell in cells)
    for cell in cells:
        rounding = next(o.split("=")[1] for o in cell["overrides"] if o.startswith("pruner.round_to="))
        after = cell["plan"]["pruning"]["widths"]["after"]
        before = cell["plan"]["pruning"]["widths"]["before"]
        if rounding != "null":
            assert all(k % int(rounding) == 0 or k == before[n] for n, k in after.items()), cell["overrides"]


@pytest.mark.slow
def test_quick_aligned_cifar10_runs_end_to_end(tmp_path: Path) -> None:
    proc, out = run_sweep("quick/aligned_cifar10", tmp_path)
    # the rounded Scratch-B models that equal the exact ones (VGG-16-A's widths are multiples of 16) are reused
    assert "rethink: 30 cells: 24 done, 6 reused" in proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| synthetic | resnet56 | B")]
    assert {row.split(" | ")[2] for row in rows} == {"B", "B (round_to=8)", "B (round_to=16)"}, proc.stdout


@pytest.mark.parametrize(
    "overrides",
    [
        ("dataset=digits", "model=torchvision", "model.arch=mobilenet_v3_small", "pruner=l1", "pruner.ratio=0.3"),
        ("dataset=cifar10", "model=resnet56", "pruner=thinet", "pruner.ratio=0.3"),
        ("dataset=cifar10", "model=vgg16", "pruner=uniform", "pruner.ratio=0.3", "schedule=scratch_b"),
    ],
)
def test_every_channel_pruner_aligns_its_target(overrides: tuple[str, ...]) -> None:
    schedule = () if any(o.startswith("schedule=") for o in overrides) else ("schedule=finetune",)
    plan = build_plan(compose_settings(*overrides, *schedule, "pruner.round_to=8"))
    full, kept = group_widths(plan.large), group_widths(plan.pruned)
    assert kept != full and all(k % 8 == 0 or k == full[name] for name, k in kept.items())
    assert plan.pruning_summary()["widths"]["requested"] != kept
