"""Unstructured magnitude pruning cells: masks kept through retraining, sparse FLOPs, Scratch-B from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_settings

from rethink.errors import UserError
from rethink.pipeline.budget import scratch_b_budget
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning.masks import load_masks

CELL = ("dataset=synthetic", "model=vgg19_bn", "model.width_multiplier=0.125", "trainer=cpu", "pruner=magnitude")


def _zero_where_masked(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> bool:
    return all(bool((weights[f"{name}.weight"][~mask] == 0).all()) for name, mask in masks.items())


def test_magnitude_cells_keep_masks_and_stretch_scratch_b(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    runs = {
        schedule: run_cell(
            compose_settings(*CELL, "pruner.ratio=0.8", f"schedule={schedule}", store), tmp_path / schedule
        )
        for schedule in ("finetune", "scratch_b", "lottery")
    }
    prune_dir = Path(runs["finetune"]["stages"][1]["path"])
    masks = load_masks(prune_dir / "masks.pt")
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert abs(kept - 0.2) < 0.001
    for schedule, result in runs.items():
        weights = torch.load(tmp_path / schedule / "weights.pt", weights_only=True)
        assert _zero_where_masked(weights, masks), schedule  # still exactly zero after retraining
        assert abs(result["pruning"]["sparsity"]["density"] - kept) < 1e-6
    finetune = runs["finetune"]
    ratio = finetune["pruning"]["achieved"]["flops_ratio"]
    assert ratio > 1.5  # FLOPs counted on nonzero weights
    scratch = runs["scratch_b"]
    assert scratch["epochs"] == scratch_b_budget(2, ratio, [0.5, 0.75]).epochs > 2
    # the lottery ticket starts from the original init under the mask
    init = torch.load(prune_dir / "init.pt", weights_only=True)
    original = torch.load(Path(finetune["stages"][0]["path"]) / "init.pt", weights_only=True)
    name = next(iter(masks))
    assert torch.equal(init[f"{name}.weight"], original[f"{name}.weight"] * masks[name])


def test_layer_scope_prunes_every_conv_by_the_ratio(tmp_path: Path) -> None:
    cfg = compose_settings(
        *CELL, "pruner.scope=layer", "pruner.ratio=0.5", "schedule=scratch_e", f"paths.artifact_dir={tmp_path}"
    )
    result = run_cell(cfg, tmp_path / "run")
    masks = load_masks(Path(result["stages"][1]["path"]) / "masks.pt")
    assert all(int((~m).sum()) == int(m.numel() * 0.5) for m in masks.values())
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert _zero_where_masked(weights, masks)


def test_iterative_magnitude_pruning_resets_to_init_each_round(tmp_path: Path, fit_starts: dict) -> None:
    cfg = compose_settings(
        *CELL, "pruner.rounds=2", "pruner.round_ratio=0.5", "schedule=lottery", f"paths.artifact_dir={tmp_path}"
    )
    result = run_cell(cfg, tmp_path / "run")
    # each round is a decision (a prune stage) and a retraining of the original init under it
    assert [s["stage"] for s in result["stages"]] == ["pretrain", "prune", "imp", "prune", "retrain"]
    first, masks = (load_masks(Path(result["stages"][i]["path"]) / "masks.pt") for i in (1, 3))
    density = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert abs(density - 0.25) < 0.001  # two rounds of 50% of what remains
    assert all(bool((masks[n] <= first[n]).all()) for n in masks)  # a pruned weight never comes back
    round_two = torch.load(Path(result["stages"][2]["path"]) / "weights.pt", weights_only=True)
    original = torch.load(Path(result["stages"][0]["path"]) / "init.pt", weights_only=True)
    name = next(iter(masks))
    assert torch.equal(fit_starts["imp"][f"{name}.weight"], original[f"{name}.weight"] * first[name])  # reset
    assert not torch.equal(round_two[f"{name}.weight"], original[f"{name}.weight"])  # round 2 was trained
    with pytest.raises(UserError, match="needs pruner.round_ratio"):
        build_plan(compose_settings(*CELL, "pruner.rounds=3", "schedule=lottery"))


def test_lottery_retraining_starts_from_exactly_the_masked_original_init(tmp_path: Path, fit_starts: dict) -> None:
    starts = fit_starts
    result = run_cell(compose_settings(*CELL, "schedule=lottery", f"paths.artifact_dir={tmp_path}"), tmp_path / "run")
    original = torch.load(Path(result["stages"][0]["path"]) / "init.pt", weights_only=True)
    masks = load_masks(Path(result["stages"][1]["path"]) / "masks.pt")
    for name, tensor in original.items():
        module = name.rsplit(".", 1)[0]
        expected = tensor * masks[module] if name.endswith("weight") and module in masks else tensor
        assert torch.equal(starts["retrain"][name], expected), name
    plan = build_plan(compose_settings(*CELL, "schedule=scratch_b")).to_dict()
    assert "decided_by_training" in plan["pruning"] and plan["budget"] is None  # dry run: masks come from training
