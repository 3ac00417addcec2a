"""Cells of the graph family end to end on digits: every channel pruner and magnitude pruning with fine-tuning,
Scratch-B (its budget from the recorded FLOPs convention) and lottery tickets (the original init sliced by the kept
channels) on torchvision's MobileNetV3-Small (quarter width, CIFAR stem)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_settings

from rethink.arch import ArchSpec, build, spec_cost
from rethink.arch.surgery import shrink
from rethink.errors import UserError
from rethink.pipeline.budget import scratch_b_budget
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell

CELL = (
    "dataset=digits",
    "model=torchvision",
    "model.arch=mobilenet_v3_small",
    "model.kwargs={width_mult:0.25}",
    "model.cifar_stem=true",
    "trainer=cpu",
    "pretrain.epochs=2",
    "dataset.recipe.finetune_epochs=1",
    "trainer.limit_train_batches=2",
)
PRUNERS = {
    "l1": ("pruner=l1", "pruner.ratio=0.5"),
    "slimming": ("pruner=slimming", "pruner.ratio=0.4"),
    "random": ("pruner=random", "pruner.ratio=0.5"),
    "magnitude": ("pruner=magnitude", "pruner.ratio=0.5"),
}


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_runs_finetune_scratch_b_and_lottery(pruner: str, tmp_path: Path, fit_starts: dict) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    runs, starts = {}, {}
    for schedule in ("finetune", "scratch_b", "lottery"):
        runs[schedule] = run_cell(
            compose_settings(*CELL, *PRUNERS[pruner], f"schedule={schedule}", store), tmp_path / schedule
        )
        starts[schedule] = fit_starts.get("retrain")
    finetune = runs["finetune"]
    assert finetune["flops"]["convention"] == "torch_flop_counter"
    # Scratch-B trains nothing but its own stage: the pretrain and prune stages are reused (or not needed at all)
    assert [s["status"] for s in runs["scratch_b"]["stages"]].count("computed") == 1
    prune_dir = Path(finetune["stages"][1]["path"])
    large = ArchSpec.from_json((Path(finetune["stages"][0]["path"]) / "spec.json").read_text())
    pruned = ArchSpec.from_json((prune_dir / "spec.json").read_text())
    # Scratch-B: int(pretrain epochs x FLOPs ratio), the ratio by FlopCounterMode (sparse: nonzero conv weights)
    ratio = finetune["pruning"]["achieved"]["flops_ratio"]
    if pruner != "magnitude":
        assert ratio == pytest.approx(spec_cost(large, 32).flops / spec_cost(pruned, 32).flops, abs=1e-6)
    assert ratio > 1.2
    assert runs["scratch_b"]["epochs"] == scratch_b_budget(2, ratio, [0.5, 0.75]).epochs
    assert starts["scratch_b"] is None or pruner == "magnitude"  # channels: the library's init at the pruned widths
    # lottery: the stored original init cut exactly as the decision cut the trained model
    original = torch.load(Path(finetune["stages"][0]["path"]) / "init.pt", weights_only=True)
    model = build(large)
    model.load_state_dict(original, strict=True)
    if pruner == "magnitude":
        masks = torch.load(prune_dir / "masks.pt", weights_only=True)
        expected = {
            k: v * masks[k[: -len(".weight")]] if k[: -len(".weight")] in masks else v for k, v in original.items()
        }
        expected = {k: v for k, v in expected.items() if k.endswith(".weight")}
    else:
        keep = json.loads((prune_dir / "keep.json").read_text())
        expected = shrink(model, large, keep)[1].state_dict()
    assert all(torch.equal(starts["lottery"][k], v) for k, v in expected.items())


def test_uniform_is_trained_from_scratch_and_refuses_inherited_weights(tmp_path: Path) -> None:
    result = run_cell(
        compose_settings(
            *CELL, "pruner=uniform", "pruner.ratio=0.5", "schedule=scratch_b", f"paths.artifact_dir={tmp_path}"
        ),
        tmp_path / "run",
    )
    assert result["epochs"] == scratch_b_budget(2, result["pruning"]["achieved"]["flops_ratio"], [0.5, 0.75]).epochs
    with pytest.raises(UserError, match="no trained weights to inherit"):
        build_plan(compose_settings(*CELL, "pruner=uniform", "pruner.ratio=0.5", "schedule=finetune"))


@pytest.mark.parametrize("schedule", ["scratch_e", "lr_rewind", "finetune_restart"])
def test_the_other_schedules_run_on_a_graph_model(schedule: str, tmp_path: Path) -> None:
    settings = compose_settings(
        *CELL, *PRUNERS["l1"], f"schedule={schedule}", "schedule.epochs=1", f"paths.artifact_dir={tmp_path}"
    )
    result = run_cell(settings, tmp_path / "run")
    assert result["stages"][-1]["stage"] == "retrain" and result["stages"][-1]["status"] == "computed"
    assert result["flops"]["convention"] == "torch_flop_counter" and result["params"] < 119_842
