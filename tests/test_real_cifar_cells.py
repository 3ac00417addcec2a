"""End to end on the real CIFAR-10 (tiny epochs, narrow models): every automatic pruner with the three schedules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.pipeline.result import run_cell

PRUNERS = {
    "slimming": ("model=vgg19", "model.head=linear", "pruner=slimming", "pruner.ratio=0.5"),
    "magnitude": ("model=vgg19_bn", "pruner=magnitude", "pruner.ratio=0.5"),
    "sss": ("model=resnet56", "pruner=sss", "pruner.gamma=0.5", "pruner.threshold=0.5"),
}
KEYS = {
    "cell",
    "params",
    "flops",
    "accuracy",
    "epochs",
    "pruning",
    "budget",
    "stages",
    "wall_time_s",
    "git_sha",
    "versions",
    "config",
}


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_pruner_cells_on_real_cifar10(pruner: str, tmp_path: Path, cifar10_npz: Path) -> None:
    base = (
        "dataset=cifar10",
        f"dataset.npz_path={cifar10_npz}",
        "dataset.train_subset=1000",
        "dataset.test_subset=500",
        "model.width_multiplier=0.125",
        "pretrain.epochs=2",
        "schedule.epochs=1",
        "trainer=cpu",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
        *PRUNERS[pruner],
    )
    for schedule in ("finetune", "scratch_e", "scratch_b"):
        overrides = [o for o in base if not (schedule != "finetune" and o == "schedule.epochs=1")]
        run_cell(compose_settings(*overrides, f"schedule={schedule}"), tmp_path / schedule)
        result = json.loads((tmp_path / schedule / "result.json").read_text())
        assert set(result) >= KEYS and result["cell"]["schedule"] == schedule
        assert 0 <= result["accuracy"]["top1_final"] <= 100 and result["pruning"]["achieved"]["flops_ratio"] > 1
        assert result["budget"]["epochs"] == result["epochs"]
