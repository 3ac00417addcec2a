"""Network Slimming cells: plans before training, the sparsity pretrain, the decided architecture and its budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.arch import spec_cost
from rethink.errors import UserError
from rethink.pipeline.budget import scratch_b_budget
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell

SLIM = ("dataset=synthetic", "model=vgg19", "model.head=linear", "model.width_multiplier=0.125", "trainer=cpu")


def test_dry_run_says_what_training_decides() -> None:
    cfg = compose_settings(
        "dataset=cifar10",
        "model=vgg19",
        "model.head=linear",
        "pruner=slimming",
        "pruner.ratio=0.7",
        "schedule=scratch_b",
    )
    plan = build_plan(cfg).to_dict()
    assert plan["pruning"]["requested"]["sparsity"] == 1e-4 and plan["pruning"]["requested"]["ratio"] == 0.7
    assert "per-layer widths" in plan["pruning"]["decided_by_training"]
    assert [s["name"] for s in plan["stages"]] == ["pretrain", "retrain"]  # even scratch needs the trained model
    assert "decided by training" in plan["stages"][1]["recipe"] and plan["budget"] is None
    assert "pruned" not in plan["models"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dataset=imagenet", "model=vgg16_imagenet"], "pruner=slimming with model 'vgg16_imagenet'"),
        (
            ["dataset=cifar10", "model=vgg19", "pruner.ratio=1.0"],
            "pruner.ratio=1.0 (float): expected a number in [0, 1)",
        ),
        (["dataset=cifar10", "model=vgg19", "pruner.on_empty=drop"], "pruner.on_empty='drop' (str) is not known"),
    ],
)
def test_bad_slimming_input(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        build_plan(compose_settings(*overrides, "pruner=slimming", "schedule=finetune"))


def test_slimming_cells_share_the_sparsity_pretrain_and_stretch_scratch_b(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    finetune = run_cell(compose_settings(*SLIM, "pruner=slimming", "schedule=finetune", store), tmp_path / "a")
    scratch = run_cell(compose_settings(*SLIM, "pruner=slimming", "schedule=scratch_b", store), tmp_path / "b")
    assert [(s["stage"], s["status"]) for s in scratch["stages"]] == [
        ("pretrain", "reused"),
        ("prune", "reused"),
        ("retrain", "computed"),
    ]
    widths = finetune["pruning"]["widths"]
    assert sum(widths["after"].values()) < sum(widths["before"].values())
    assert finetune["pruning"]["achieved"]["params_pruned_fraction"] > 0
    # Scratch-B epochs follow the FLOPs of the architecture slimming decided
    large = spec_cost(build_plan(compose_settings(*SLIM)).specs["large"], 32).flops
    ratio = large / scratch["flops"]["paper"]
    assert scratch["budget"]["epochs"] == scratch_b_budget(2, ratio, [0.5, 0.75]).epochs == scratch["epochs"]
    # the plain (unregularised) baseline is another pretrain
    baseline = run_cell(compose_settings(*SLIM, store), tmp_path / "c")
    assert baseline["stages"][0]["key"] != finetune["stages"][0]["key"]


def test_uniform_control_matches_the_slimmed_channel_count(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    slim = run_cell(compose_settings(*SLIM, "pruner=slimming", "schedule=scratch_e", store), tmp_path / "slim")
    reference = tmp_path / "slim" / "spec.json"
    cfg = compose_settings(*SLIM, "pruner=uniform", f"pruner.reference={reference}", "schedule=scratch_e", store)
    plan = build_plan(cfg).to_dict()
    after, slimmed = plan["pruning"]["widths"]["after"], slim["pruning"]["widths"]["after"]
    assert abs(sum(after.values()) - sum(slimmed.values())) <= len(after) / 2
    assert [s["name"] for s in plan["stages"]] == ["retrain"]  # a predefined architecture: no pretraining
    before = plan["pruning"]["widths"]["before"]
    fractions = {round(after[n] / before[n], 1) for n in after if before[n] >= 8}
    assert len(fractions) == 1  # one keep fraction for every layer


def test_uniform_needs_a_ratio_or_a_reference_and_scratch() -> None:
    with pytest.raises(UserError, match="exactly one of pruner.ratio"):
        build_plan(compose_settings(*SLIM, "pruner=uniform", "schedule=scratch_e"))
    with pytest.raises(UserError, match="train it from scratch"):
        build_plan(compose_settings(*SLIM, "pruner=uniform", "pruner.ratio=0.5", "schedule=finetune"))
    plan = build_plan(compose_settings(*SLIM, "pruner=uniform", "pruner.ratio=0.5", "schedule=scratch_b")).to_dict()
    assert abs(plan["pruning"]["achieved"]["channels_pruned_fraction"] - 0.5) < 0.05
