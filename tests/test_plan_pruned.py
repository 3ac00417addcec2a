"""Dry-run plans of pruned cells: the paper's L1-norm targets, their params and Scratch-B budgets, and bad input."""

from __future__ import annotations

import pytest
from conftest import compose_settings

from rethink.errors import UserError
from rethink.pipeline.plan import build_plan

# (model, dataset, variant, pruned params, Scratch-B epochs, milestones): paper-spec §5.1
TARGETS = [
    ("vgg16", "cifar10", "A", 5_397_034, 243, [121, 182]),
    ("resnet56", "cifar10", "A", 773_336, 178, [89, 133]),
    ("resnet56", "cifar10", "B", 735_712, 220, [110, 165]),
    ("resnet110", "cifar10", "A", 1_688_522, 190, [95, 142]),
    ("resnet110", "cifar10", "B", 1_168_424, 260, [130, 195]),
    ("resnet34", "imagenet", "A", 20_151_764, 106, [35, 70, 105]),
    ("resnet34", "imagenet", "B", 19_469_372, 118, [39, 78, 117]),
]


@pytest.mark.parametrize("model, dataset, variant, params, epochs, milestones", TARGETS)
def test_l1_targets_and_scratch_b_budget(model, dataset, variant, params, epochs, milestones) -> None:
    cfg = compose_settings(
        f"model={model}", f"dataset={dataset}", "pruner=l1", f"pruner.variant={variant}", "schedule=scratch_b"
    )
    plan = build_plan(cfg).to_dict()
    assert plan["models"]["pruned"]["params"] == params
    assert (plan["budget"]["epochs"], plan["budget"]["milestones"]) == (epochs, milestones)
    assert plan["budget"]["capped"] is False
    assert [s["name"] for s in plan["stages"]] == ["retrain"]  # a predefined target needs no trained large model
    assert plan["stages"][0]["epochs"] == epochs and plan["stages"][0]["milestones"] == milestones
    achieved = plan["pruning"]["achieved"]
    assert achieved["params_pruned_fraction"] == round(1 - params / plan["models"]["large"]["params"], 6)
    assert plan["pruning"]["requested"]["variant"] == variant


@pytest.mark.parametrize(
    "schedule, init, epochs, lr, milestones",
    [
        ("finetune", "pretrained", 40, 0.001, []),
        ("scratch_e", "random", 160, 0.1, [80, 120]),
        ("finetune_restart", "pretrained", 40, 0.01, [20]),
        ("finetune_restart_full", "pretrained", 160, 0.1, [80, 120]),
        ("lottery", "original", 160, 0.1, [80, 120]),
        ("lr_rewind", "pretrained", 40, 0.001, []),
    ],
)
def test_retraining_schedules(schedule: str, init: str, epochs: int, lr: float, milestones: list[int]) -> None:
    cfg = compose_settings("model=resnet56", "dataset=cifar10", "pruner=l1", "pruner.variant=A", f"schedule={schedule}")
    stages = build_plan(cfg).to_dict()["stages"]
    needs_large = init != "random"
    assert [s["name"] for s in stages] == (["pretrain", "retrain"] if needs_large else ["retrain"])
    retrain = stages[-1]
    assert (retrain["init"], retrain["epochs"], retrain["lr"], retrain["milestones"]) == (init, epochs, lr, milestones)


def test_lr_rewind_replays_the_end_of_the_pretrain_schedule() -> None:
    cfg = compose_settings(
        "model=resnet56",
        "dataset=cifar10",
        "pruner=l1",
        "pruner.variant=A",
        "schedule=lr_rewind",
        "schedule.epochs=100",
    )
    retrain = build_plan(cfg).to_dict()["stages"][-1]
    assert (retrain["lr"], retrain["milestones"]) == (0.1, [20, 60])  # epochs 60..160 of [80, 120]


def test_imagenet_scratch_b_is_capped_at_twice_the_epochs() -> None:
    cfg = compose_settings(
        "model=resnet34", "dataset=imagenet", "pruner=l1", "pruner.stage_ratios=[0.7,0.7,0.7,0.7]", "schedule=scratch_b"
    )
    budget = build_plan(cfg).to_dict()["budget"]
    assert budget["flops_ratio"] > 2 and (budget["epochs"], budget["milestones"], budget["capped"]) == (
        180,
        [60, 120],
        True,
    )


def test_user_defined_l1_target() -> None:
    cfg = compose_settings(
        "model=resnet56",
        "dataset=cifar10",
        "pruner=l1",
        "pruner.stage_ratios=[0.5,0.5,0.5]",
        "pruner.skip=[2]",
        "schedule=scratch_e",
    )
    widths = build_plan(cfg).to_dict()["pruning"]["widths"]["after"]
    assert widths["layer1.0.conv1"] == 16 and widths["layer1.1.conv1"] == 8 and widths["layer3.8.conv1"] == 32


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=vgg16", "pruner.variant=B"], "model 'vgg16' has no predefined L1-norm variant 'B'; accepted: A"),
        (["model=densenet40", "pruner.variant=A"], "densenet40"),
        (
            ["model=resnet56", "pruner.stage_ratios=[0.5,1.0,0.5]"],
            "prune ratio 1.0 for model 'resnet56' is invalid; accepted: numbers in [0, 1)",
        ),
        (["model=resnet56", "pruner.stage_ratios=[0.5,0.5]"], "needs 3 stage ratios, got 2"),
        (["model=resnet56", "pruner.stage_ratios=[0.99,0.5,0.5]"], "would keep 0 of its 16 filters"),
        (["model=resnet56", "pruner.variant=A", "schedule=baseline"], "schedule=baseline trains the unpruned model"),
        (["model=resnet56", "pruner=none", "schedule=finetune"], "pick a pruner, e.g. pruner=l1"),
        (["model=resnet56", "pruner.variant=A", "schedule=lr_rewind", "schedule.epochs=200"], "must be <= 160"),
    ],
)
def test_bad_pruning_input(overrides: list[str], message: str) -> None:
    base = ["dataset=cifar10", "pruner=l1", "schedule=scratch_e"]
    with pytest.raises(UserError) as err:
        build_plan(compose_settings(*base, *overrides))
    assert message in str(err.value)


def test_imported_weights_must_exist_and_cannot_make_a_lottery_ticket(tmp_path) -> None:
    base = ["model=resnet56", "dataset=cifar10", "pruner=l1", "pruner.variant=A"]
    with pytest.raises(UserError, match="pretrain.weights='/no/such.pt': no such file"):
        build_plan(compose_settings(*base, "schedule=finetune", "pretrain.weights=/no/such.pt"))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(UserError, match="original initialisation, which imported"):
        build_plan(compose_settings(*base, "schedule=lottery", f"pretrain.weights={weights}"))
