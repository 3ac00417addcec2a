"""Sparse Structure Selection cells: the paper's ResNet-41/32/26 budgets, automatic branch removal, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell

SSS_BASE = ("dataset=imagenet", "model=resnet50", "pruner=sss", "pretrain.epochs=100", "pretrain.milestones=[30,60,90]")


@pytest.mark.parametrize(
    "variant, params, epochs, milestones",
    [
        ("resnet41", 25_358_120, 117, [35, 70, 105]),
        ("resnet32", 14_268_968, 145, [43, 86, 129]),
        ("resnet26", 14_919_464, 179, [53, 106, 159]),
    ],
)
def test_sss_targets_stretch_every_lr_stage(variant: str, params: int, epochs: int, milestones: list[int]) -> None:
    plan = build_plan(compose_settings(*SSS_BASE, f"pruner.variant={variant}", "schedule=scratch_b")).to_dict()
    assert plan["models"]["pruned"]["params"] == params
    assert (plan["budget"]["epochs"], plan["budget"]["milestones"]) == (epochs, milestones)
    assert [s["name"] for s in plan["stages"]] == ["retrain"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["dataset=cifar10", "model=vgg16", "schedule=finetune"],
            "pruner=sss cannot prune model 'vgg16': its family 'cifar_vgg' does not declare its removable residual",
        ),
        (  # its branches can be removed (slimming's remove_block) but take no factor
            ["dataset=cifar10", "model=preresnet164", "schedule=finetune"],
            "family 'cifar_preresnet' can only remove its branches",
        ),
        (
            ["dataset=imagenet", "model=resnet50", "pruner.variant=resnet18", "schedule=scratch_e"],
            "unknown SSS variant",
        ),
        (
            ["dataset=imagenet", "model=resnet50", "pruner.variant=resnet41", "schedule=finetune"],
            "train it from scratch",
        ),
    ],
)
def test_bad_sss_input(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_plan(compose_settings("pruner=sss", *overrides))


def test_automatic_sss_removes_branches_and_retrains(tmp_path: Path) -> None:
    base = (
        "dataset=synthetic",
        "model=resnet56",
        "model.width_multiplier=0.25",
        "trainer=cpu",
        "pruner=sss",
        "pruner.gamma=0.5",
        "pruner.threshold=0.5",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    finetune = run_cell(compose_settings(*base, "schedule=finetune"), tmp_path / "finetune")
    scratch = run_cell(compose_settings(*base, "schedule=scratch_b"), tmp_path / "scratch_b")
    assert [(s["stage"], s["status"]) for s in scratch["stages"]] == [
        ("pretrain", "reused"),
        ("prune", "reused"),
        ("retrain", "computed"),
    ]
    kept = json.loads((Path(finetune["stages"][1]["path"]) / "keep.json").read_text())
    removed = sum(flag == 0 for flags in kept.values() for flag in flags)
    assert removed > 0 and finetune["pruning"]["achieved"]["flops_ratio"] > 1
    assert scratch["budget"]["epochs"] >= 2  # SSS Scratch-B: every LR stage stretched by the FLOPs ratio
