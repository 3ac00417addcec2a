"""Guided pruning, transferred guided pruning, guided sparsification and the params-matched uniform control (the
paper's Sec. 5): stage ratios, rounding, stage matching, source cells shared through the store, bad input."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import compose_settings

from rethink.arch import build, default_spec, spec_cost
from rethink.arch.stages import feature_map_sizes, group_stages
from rethink.arch.surgery import group_widths, with_group_widths
from rethink.errors import UserError
from rethink.pipeline.estimate import stage_estimates
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning import PruneContext, SourceModels, create
from rethink.pruning.guided import GuidedSettings, GuidingCell
from rethink.pruning.guided_sparsity import GuidedSparsitySettings
from rethink.pruning.masks import layer_masks, magnitude_masks
from rethink.pruning.uniform import UniformSettings, params_matched_target
from rethink.pruning.uniform_sparsity import UniformSparsitySettings

# planted kept ratios per stage (feature-map size) of a slimming decision
PLANTED = {32: 0.5, 16: 0.25, 8: 0.75, 4: 0.3, 2: 0.125, 1: 1.0}


def planted_decision(spec_name: str) -> tuple:
    """A VGG and a pruned version keeping PLANTED[stage] of every group of each stage (rounded down)."""
    large = default_spec(spec_name, 10)
    stages = group_stages(large, 32)
    widths = {name: max(1, int(width * PLANTED[stages[name]])) for name, width in group_widths(large).items()}
    return large, with_group_widths(large, widths)


def guided(**source: object):
    return create(GuidedSettings(source=GuidingCell(**source)), "vgg19")


def test_guided_widths_are_the_stage_average_ratios_rounded_half_up() -> None:
    large, pruned = planted_decision("vgg19")
    # one group of stage 32 keeps 7 of 64 instead: the stage average is (32/64 + 7/64) / 2
    widths = group_widths(pruned) | {"features.3": 7}
    pruned = with_group_widths(large, widths)
    target = guided().target_from(large, 32, SourceModels(large, pruned, 32))
    stages, before = group_stages(large, 32), group_widths(large)
    ratios = {32: (32 / 64 + 7 / 64) / 2}
    for size in (16, 8, 4, 2, 1):  # every group of these stages was planted at int(w * r)
        kept = [widths[n] / before[n] for n in before if stages[n] == size]
        ratios[size] = sum(kept) / len(kept)
    expected = {n: max(1, math.floor(w * ratios[stages[n]] + 0.5)) for n, w in before.items()}
    assert group_widths(target) == expected
    assert expected["features.0"] == 20  # 64 x 39/128 = 19.5: halves round up


def test_transferred_guided_pruning_maps_vgg16_stages_onto_vgg19_by_feature_map_size() -> None:
    source_large, source_pruned = planted_decision("vgg16")
    large = default_spec("vgg19", 100)
    target = guided(model="vgg16", dataset="cifar10").target_from(
        large, 32, SourceModels(source_large, source_pruned, 32)
    )
    stages, kept = group_stages(large, 32), group_widths(target)
    assert len(kept) == 17  # VGG-19: 16 convs and the classifier's hidden layer
    for name, width in group_widths(large).items():
        ratio = int(width * PLANTED[stages[name]]) / width  # VGG-16's groups of a stage share widths
        assert kept[name] == max(1, math.floor(width * ratio + 0.5)), name


def test_guided_cells_reuse_the_slimming_cell_and_uniform_matches_its_params(tmp_path: Path) -> None:
    common = (
        "dataset=synthetic",
        "model=vgg19",
        "model.width_multiplier=0.125",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    slim = run_cell(compose_settings(*common, "pruner=slimming", "schedule=scratch_e"), tmp_path / "slim")
    cell = run_cell(compose_settings(*common, "pruner=guided", "schedule=scratch_b"), tmp_path / "guided")
    source = [(s["stage"], s["status"], s["key"]) for s in cell["stages"] if "source" in s]
    assert source == [(s["stage"], "reused", s["key"]) for s in slim["stages"][:2]]
    assert cell["stages"][-1]["stage"] == "retrain" and "source" not in cell["stages"][-1]
    assert cell["pruning"]["decision"]["source"]["pruner"] == "slimming"
    assert cell["budget"]["epochs"] >= 2  # Scratch-B of the guided architecture's FLOPs
    # the guided widths follow the slimming decision's stage ratios
    large = build_plan(compose_settings(*common)).large
    decided = with_group_widths(large, slim["pruning"]["widths"]["after"])
    expected = guided().target_from(large, 32, SourceModels(large, decided, 32))
    assert cell["pruning"]["widths"]["after"] == group_widths(expected)
    assert cell["pruning"]["stage_ratios"]["sizes"] == [32, 16, 8, 4, 2, 1]

    uniform = run_cell(
        compose_settings(*common, "pruner=uniform", "pruner.ratio=0.5", "pruner.match=slimming", "schedule=scratch_e"),
        tmp_path / "uniform",
    )
    assert [s["status"] for s in uniform["stages"]] == ["reused", "reused", "computed"]
    ratios = uniform["pruning"]["stage_ratios"]["kept"]
    assert max(ratios) - min(ratios) < 0.1  # one keep fraction everywhere (up to rounding)
    # the uniform control closest in params to the slimming decision: one channel more or less is farther
    plan = build_plan(compose_settings(*common, "pruner=uniform", "pruner.ratio=0.5", "schedule=scratch_e"))
    pool = sum(group_widths(large).values())
    kept = sum(uniform["pruning"]["widths"]["after"].values())
    for other in (kept - 1, kept + 1):
        spec = create(UniformSettings(ratio=1 - other / pool), "vgg19").target(plan.large)
        assert abs(spec_cost(spec, 32).params - slim["params"]) >= abs(uniform["params"] - slim["params"])


@pytest.mark.parametrize("source", [{}, {"model": "vgg16", "dataset": "cifar10"}], ids=["guided", "transferred"])
def test_uniform_matched_to_guided_has_the_guided_architecture_s_params(source: dict[str, str]) -> None:
    source_large, decided = planted_decision(source.get("model", "vgg19"))
    large, given = default_spec("vgg19", 100), SourceModels(source_large, decided, 32)
    control = create(UniformSettings(ratio=0.5, match="guided", source=GuidingCell(**source)), "vgg19")
    assert control.source().model == source.get("model") and control.source().pruner["ratio"] == 0.5
    target = control.target_from(large, 32, given)
    params = spec_cost(guided(**source).target_from(large, 32, given), 32).params
    assert target == params_matched_target(large, params, 32)
    assert target != params_matched_target(large, spec_cost(decided, 32).params, 32)  # not the slimming decision's
    kept, widths = group_widths(target), group_widths(large)
    fractions = [kept[name] / width for name, width in widths.items()]
    assert max(fractions) - min(fractions) < 0.05  # one keep fraction everywhere (up to rounding)
    pool, total = sum(widths.values()), sum(kept.values())
    for other in (total - 1, total + 1):  # one channel more or less is farther from the guided params
        spec = create(UniformSettings(ratio=1 - other / pool), "vgg19").target(large)
        assert abs(spec_cost(spec, 32).params - params) >= abs(spec_cost(target, 32).params - params)


def test_uniform_sparsification_removes_as_many_weights_as_guided_sparsification() -> None:
    torch.manual_seed(0)
    spec = default_spec("resnet56", 10)
    model = build(spec)
    original, twin = copy.deepcopy(model), copy.deepcopy(model)  # a decision zeroes the weights it prunes
    guided = create(GuidedSparsitySettings(ratio=0.6), "resnet56")
    guided_masks = guided.decide(PruneContext(twin, spec, "resnet56", seed=1)).masks
    pruner = create(UniformSparsitySettings(ratio=0.6), "resnet56")
    decision = pruner.decide(PruneContext(model, spec, "resnet56", seed=1))
    removed = {name: int((~mask).sum()) for name, mask in decision.masks.items()}
    guided_removed = sum(int((~mask).sum()) for mask in guided_masks.values())
    assert decision.notes["guided_removed_weights"] == guided_removed
    assert 0 <= guided_removed - sum(removed.values()) < len(removed)  # short by less than a weight per layer
    fraction = decision.notes["layer_sparsity"]
    assert fraction == pytest.approx(guided_removed / sum(m.numel() for m in guided_masks.values()), abs=1e-6)
    for name, mask in decision.masks.items():  # one sparsity in every layer, by its own magnitudes
        assert abs(removed[name] - mask.numel() * fraction) < 1, name
    weight = original.get_submodule("layer2.0.conv1").weight.detach().abs()
    mask = decision.masks["layer2.0.conv1"]
    assert weight[~mask].max() <= weight[mask].min()  # the weights it keeps are the layer's largest
    assert bool((model.get_submodule("layer2.0.conv1").weight[~mask] == 0).all())  # and the pruned ones are zero


def test_guided_sparsification_reproduces_the_stage_sparsity_within_one_weight_per_layer() -> None:
    torch.manual_seed(0)
    spec = default_spec("resnet56", 10)
    model = build(spec)
    reference = magnitude_masks(model, 0.6, "global")
    pruner = create(GuidedSparsitySettings(ratio=0.6), "resnet56")
    decision = pruner.decide(PruneContext(model, spec, "resnet56", seed=1))
    sizes = feature_map_sizes(spec, 32)
    for size in (32, 16, 8):
        layers = [n for n, m in reference.items() if tuple(m.shape[-2:]) == (3, 3) and sizes[n] == size]
        assert len(layers) == (19 if size == 32 else 18)  # the stem and the 18 convs of stage 1; 18 in the others
        # the pooled fraction of the stage's 3x3 weights the global decision removes
        target = 1 - sum(int(reference[n].sum()) for n in layers) / sum(reference[n].numel() for n in layers)
        assert decision.notes["guide_stage_sparsity"][str(size)] == pytest.approx(target, abs=1e-6)
        for name in layers:
            mask = decision.masks[name]
            pruned = int((~mask).sum())
            assert abs(pruned - mask.numel() * target) < 1, name
    # the weights it keeps are each layer's largest
    weight = model.get_submodule("layer2.0.conv1").weight.detach().abs()
    mask = decision.masks["layer2.0.conv1"]
    assert weight[~mask].max() <= weight[mask].min()


def test_layer_masks_remove_exactly_the_requested_count() -> None:
    model = build(default_spec("resnet56", 10))
    masks = layer_masks(model, {"conv1": 0.5, "layer1.0.conv1": 0.25})
    assert int((~masks["conv1"]).sum()) == int(432 * 0.5)
    assert int((~masks["layer1.0.conv1"]).sum()) == int(2304 * 0.25)
    assert bool(masks["layer3.8.conv2"].all())
    with pytest.raises(ValueError, match="no conv layer 'nope'"):
        layer_masks(model, {"nope": 0.5})


def test_a_guided_cell_plans_the_source_stages_with_the_slimming_cells_keys() -> None:
    common = ("dataset=cifar100", "model=vgg19", "schedule=scratch_e")
    slim = build_plan(compose_settings(*common, "pruner=slimming"))
    cell = build_plan(compose_settings(*common, "pruner=guided"))
    assert [s.name for s in cell.stages] == ["retrain"] and cell.source is not None
    planned = stage_estimates(cell)
    assert [(e.stage, e.key) for e in planned[:2]] == [(e.stage, e.key) for e in stage_estimates(slim)[:2]]
    assert planned[2].key is None and planned[2].upper_bound  # the retraining's architecture is decided by training
    control = build_plan(compose_settings(*common, "pruner=uniform", "pruner.ratio=0.5", "pruner.match=guided"))
    assert [(e.stage, e.key) for e in stage_estimates(control)[:2]] == [(e.stage, e.key) for e in planned[:2]]
    transferred = build_plan(
        compose_settings(*common, "pruner=guided", "pruner.source.model=vgg16", "pruner.source.dataset=cifar10")
    )
    assert transferred.source.cell["model"] == "vgg16" and transferred.source.cell["dataset"] == "cifar10"
    assert (
        transferred.to_dict()["source"]["models"]["large"]["params"] == spec_cost(default_spec("vgg16", 10), 32).params
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["dataset=imagenet", "model=vgg16_imagenet", "pruner=guided"],
            "pruner=guided with model 'vgg16_imagenet': guided pruning on a model without BN",
        ),
        (
            ["dataset=cifar10", "model=resnet56", "pruner=guided", "pruner.source.model=vgg16"],
            "the source model's stages (feature-map sizes [32, 16, 8, 4, 2, 1]) differ from this model's ([32, 16, 8])",
        ),
        (
            ["dataset=cifar10", "model=vgg19", "pruner=guided", "pruner.source.model=nope"],
            "its source cell (pruner=slimming ratio=0.5 on nope / cifar10, seed 1) cannot be planned",
        ),
        (
            ["dataset=cifar10", "model=vgg19", "pruner=guided", "pruner.source.model=vgg16_imagenet"],
            "pruner=guided: its source cell (pruner=slimming ratio=0.5 on vgg16_imagenet / cifar10, seed 1) cannot",
        ),
        (
            ["dataset=cifar10", "model=vgg19", "pruner=uniform", "pruner.match=slimming", "pruner.reference=x"],
            "pruner.match=slimming matches the parameter count",
        ),
        (
            ["dataset=cifar10", "model=vgg19", "pruner=uniform", "pruner.match=guided", "pruner.reference=x"],
            "pruner.match=guided matches the parameter count of guided pruning at pruner.ratio",
        ),
        (
            ["dataset=cifar10", "model=vgg19", "pruner=uniform", "pruner.ratio=0.5", "pruner.source.model=vgg16"],
            "with pruner.match=channels it means nothing: set pruner.match=guided",
        ),
        (
            ["dataset=cifar10", "model=resnet56", "pruner=uniform", "pruner.ratio=0.5", "pruner.match=guided"]
            + ["pruner.source.model=vgg16"],
            "pruner=uniform with model 'resnet56': the source model's stages",
        ),
    ],
)
def test_bad_guided_input_is_refused_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        build_plan(compose_settings(*overrides, "schedule=scratch_e"))


def test_guided_pruning_is_trained_from_scratch() -> None:
    with pytest.raises(UserError, match="has no trained weights to inherit; train it from scratch"):
        build_plan(compose_settings("dataset=cifar10", "model=vgg19", "pruner=guided", "schedule=finetune"))
