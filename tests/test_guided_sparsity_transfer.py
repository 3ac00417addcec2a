"""Transferred guided sparsification (the paper's Sec. 5 / Figure 3): the pooled stage statistic, a decision guided by
another model's global magnitude decision, stages matched by feature-map size, the sweep's cells and their source
cells shared through the store."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, compose_settings
from hydra import compose, initialize_config_dir
from torch import nn

from rethink.arch import build, default_spec
from rethink.arch.stages import feature_map_sizes
from rethink.errors import UserError
from rethink.pipeline.estimate import stage_estimates
from rethink.pipeline.jobs import sweep_jobs
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning import Curve, PruneContext, SourceModels, create
from rethink.pruning.guided import GuidingCell
from rethink.pruning.guided_sparsity import GuidedSparsity, GuidedSparsitySettings
from rethink.pruning.masks import load_masks, magnitude_masks, stage_kept_weights
from rethink.pruning.uniform_sparsity import UniformSparsity, UniformSparsitySettings

TRANSFERRED = GuidingCell(model="vgg16", dataset="cifar10")
# VGG-16's feature stack at 1/4 width: the feature-map size of each conv (features.<index>), 32x32 input
VGG16_STAGES = {0: 32, 3: 32, 7: 16, 10: 16, 14: 8, 17: 8, 20: 8, 24: 4, 27: 4, 30: 4, 34: 2, 37: 2, 40: 2}


def kept(shape: tuple[int, ...], count: int) -> torch.Tensor:
    """A keep-mask of ``shape`` keeping its first ``count`` weights."""
    mask = torch.zeros(shape, dtype=torch.bool).flatten()
    mask[:count] = True
    return mask.view(shape)


def test_the_stage_statistic_pools_the_stage_s_3x3_weights() -> None:
    masks = {
        "small": kept((1, 1, 3, 3), 9),  # 9 of 9 kept
        "large": kept((2, 2, 3, 3), 9),  # 9 of 36 kept
        "shortcut": kept((4, 2, 1, 1), 0),  # 1x1: not counted
        "deep": kept((1, 2, 3, 3), 6),  # 6 of 18 kept
    }
    sizes = {"small": 32, "large": 32, "shortcut": 32, "deep": 16}
    stages = stage_kept_weights(masks, sizes)
    assert list(stages) == [32, 16]
    assert stages[32] == 18 / 45 == 0.4  # pooled; the unweighted mean of the layers' fractions is (1 + 0.25) / 2
    assert stages[16] == 6 / 18


def test_a_transferred_decision_follows_the_source_model_s_pooled_stage_sparsity() -> None:
    torch.manual_seed(0)
    source_spec = default_spec("vgg16", 10, width_multiplier=0.25)
    source_masks = magnitude_masks(build(source_spec), 0.6, "global")
    # by hand: the removed fraction of all 3x3 weights of each VGG-16 stage
    removed: dict[int, list[int]] = {}
    for index, size in VGG16_STAGES.items():
        mask = source_masks[f"features.{index}"]
        removed.setdefault(size, [0, 0])
        removed[size][0] += int((~mask).sum())
        removed[size][1] += mask.numel()
    sparsity = {size: pruned / total for size, (pruned, total) in removed.items()}

    spec = default_spec("vgg19_bn", 100, width_multiplier=0.25)
    model = build(spec)
    weights = {name: m.weight.detach().abs().flatten() for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pruner = create(GuidedSparsitySettings(ratio=0.6, source=TRANSFERRED), "vgg19_bn")
    source = SourceModels(source_spec, source_spec, 32, source_masks)
    decision = pruner.decide(PruneContext(copy.deepcopy(model), spec, "vgg19_bn", seed=1, source=source))
    assert decision.notes["guide_stage_sparsity"] == {str(size): round(s, 6) for size, s in sparsity.items()}
    vgg19 = [0, 3, 7, 10, 14, 17, 20, 23, 27, 30, 33, 36, 40, 43, 46, 49]  # its 16 convs, 2 / 2 / 4 / 4 / 4 per stage
    sizes = [32] * 2 + [16] * 2 + [8] * 4 + [4] * 4 + [2] * 4
    assert sorted(decision.masks) == sorted(f"features.{index}" for index in vgg19)
    for index, size in zip(vgg19, sizes):  # each conv: int(n * s) of its smallest weights gone, ties by position
        name = f"features.{index}"
        expected = torch.ones(weights[name].numel(), dtype=torch.bool)
        expected[torch.argsort(weights[name], stable=True)[: int(weights[name].numel() * sparsity[size])]] = False
        assert torch.equal(decision.masks[name].flatten(), expected), name
    own = create(GuidedSparsitySettings(ratio=0.6), "vgg19_bn").decide(PruneContext(model, spec, "vgg19_bn", seed=1))
    assert own.notes["guide_stage_sparsity"] != decision.notes["guide_stage_sparsity"]  # not its own decision's


def test_an_unset_source_stays_out_of_the_stage_keys() -> None:
    for settings in (GuidedSparsitySettings(ratio=0.3), UniformSparsitySettings(ratio=0.3)):
        # the keys of earlier stores but for the revision: decisions made with the mean statistic are not reused
        assert settings.key_values() == {"name": settings.name, "ratio": 0.3, "revision": 1}
        transferred = type(settings)(ratio=0.3, source=TRANSFERRED)
        assert transferred.key_values()["source"] == {"model": "vgg16", "dataset": "cifar10", "seed": None}


@pytest.mark.parametrize("pruner", ["guided_sparsity", "uniform_sparsity"])
def test_a_source_with_other_stages_is_refused_before_training(pruner: str) -> None:
    message = (
        f"pruner={pruner} with model 'preresnet110': guided sparsification transfers one sparsity per stage "
        "(feature-map size) of the 3x3 convs, but the source model 'vgg16' has them at sizes [32, 16, 8, 4, 2] and "
        "this model 'preresnet110' at [32, 16, 8], so its stage sparsities cannot be transferred; pick a source "
        "model with the same stages (e.g. vgg16 for vgg19_bn: both 32, 16, 8, 4, 2), or unset pruner.source"
    )
    overrides = ("dataset=cifar100", "model=preresnet110", f"pruner={pruner}", "schedule=scratch_e")
    with pytest.raises(UserError, match=re.escape(message)):
        build_plan(compose_settings(*overrides, "pruner.source.model=vgg16", "pruner.source.dataset=cifar10"))


def test_the_weight_level_sweep_lists_the_cells_guided_by_vgg16_on_cifar10() -> None:
    """experiment=paper/figure3_weight_level: after its 600 cells, its union's 50 transferred guided sparsification
    cells and their uniform controls (VGG-19-BN on CIFAR-100, 5 ratios, 5 seeds)."""
    name = "experiment=paper/figure3_weight_level"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = sweep_jobs(compose(config_name="config", overrides=[name], return_hydra_config=True))
    assert len(jobs) == 600 + 2 * 5 * 5
    assert not any("transferred" in override for job in jobs[:600] for override in job)
    plans = [build_plan(compose_settings(name, *job)) for job in jobs[600:] if "seed=1" in job]
    cells = {(p.pruner.name, p.pruner.settings.ratio): p for p in plans}
    ratios = (0.3, 0.5, 0.7, 0.8, 0.9)
    assert sorted(cells) == sorted((pruner, r) for pruner in ("guided_sparsity", "uniform_sparsity") for r in ratios)
    for (pruner, ratio), plan in cells.items():
        assert plan.cell == {
            "dataset": "cifar100", "model": "vgg19_bn", "pruner": pruner, "schedule": "scratch_e", "seed": 1
        }  # fmt: skip
        assert plan.pruner.settings.source == TRANSFERRED
        assert plan.source.cell == {
            "dataset": "cifar10", "model": "vgg16", "pruner": "magnitude", "schedule": "scratch_e", "seed": 1
        }  # fmt: skip
        assert plan.source.pruner.settings.scope == "global" and plan.source.pruner.settings.ratio == ratio
        assert [s.name for s in plan.stages] == ["pretrain", "retrain"]
    for ratio in ratios:  # the control follows the same source decision on the same trained model
        guided, control = (stage_estimates(cells[(p, ratio)]) for p in ("guided_sparsity", "uniform_sparsity"))
        assert [e.stage for e in guided] == ["pretrain", "prune", "pretrain", "prune", "retrain"]
        assert [(e.stage, e.key) for e in guided[:3]] == [(e.stage, e.key) for e in control[:3]]
        requested = cells[("guided_sparsity", ratio)].pruner.requested()
        matched = "transferred guided from vgg16/cifar10"
        assert GuidedSparsity.curve(requested) == Curve("weights", "transferred guided", ratio, matched)
        assert UniformSparsity.curve(requested) == Curve("weights", "uniform", ratio, matched)
        assert GuidedSparsity.row_setting(requested) == {"ratio": ratio, "source": "vgg16/cifar10"}


def test_transferred_cells_share_the_source_cell_s_stages(tmp_path: Path) -> None:
    common = (
        "dataset=synthetic",
        "model=vgg19_bn",
        "model.width_multiplier=0.125",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.limit_train_batches=2",
        "pretrain.epochs=1",
        "schedule=scratch_e",
        "pruner.ratio=0.7",
        "pruner.source.model=vgg16",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    guided = run_cell(compose_settings(*common, "pruner=guided_sparsity"), tmp_path / "guided")
    control = run_cell(compose_settings(*common, "pruner=uniform_sparsity"), tmp_path / "control")
    stages = [(s["stage"], s["status"], s.get("source", {}).get("model")) for s in guided["stages"]]
    assert stages == [
        ("pretrain", "computed", "vgg16"),
        ("prune", "computed", "vgg16"),
        ("pretrain", "computed", None),
        ("prune", "computed", None),
        ("retrain", "computed", None),
    ]
    assert [s["status"] for s in control["stages"]] == ["reused", "reused", "reused", "computed", "computed"]
    assert [s["key"] for s in control["stages"][:3]] == [s["key"] for s in guided["stages"][:3]]
    # the decision follows the pooled stage sparsity of the source cell's global magnitude masks
    source_masks = load_masks(Path(guided["stages"][1]["path"]) / "masks.pt")
    source_spec = build_plan(compose_settings(*common, "pruner=guided_sparsity")).source.large
    stage_kept = stage_kept_weights(source_masks, feature_map_sizes(source_spec, 32))
    decision = guided["pruning"]["decision"]
    assert decision["guide_stage_sparsity"] == {str(size): round(1 - k, 6) for size, k in stage_kept.items()}
    assert decision["source"]["model"] == "vgg16" and decision["source"]["pruner"] == "magnitude"
    sparsity = guided["pruning"]["sparsity"]  # the control removes as many weights as the transferred decision
    assert control["pruning"]["decision"]["guided_removed_weights"] == sparsity["total"] - sparsity["kept"]
