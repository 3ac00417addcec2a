"""L1-norm targets (paper-spec §5.1): predefined cfgs, params and Scratch-B epochs; user targets; criteria; errors."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
import torch
from torch import nn

from rethink.arch import build, default_spec, spec_cost
from rethink.arch.spec import ArchSpec
from rethink.pipeline.budget import scratch_b_budget
from rethink.pruning.criteria import keep_largest, keep_random, l1_filter_scores
from rethink.pruning.targets import (
    PREDEFINED,
    L1Rule,
    l1_rule,
    l1_target_spec,
    prunable_convs,
    target_widths,
)

M = "M"
CIFAR_SIZE, IMAGENET_SIZE = 32, 224


def _widths(spec: ArchSpec) -> list[Any]:
    """The pruned width list of a spec: VGG cfg, CIFAR ResNet inner widths, or ImageNet ResNet conv1 widths."""
    if spec.family == "cifar_vgg":
        return spec.config["cfg"]
    if spec.family == "cifar_resnet":
        return spec.config["inner"]
    return [inner[0] for stage in spec.config["inner_widths"] for inner in stage]


PAPER = [  # model, variant, classes, input size, target widths, params, Scratch-B epochs, milestones
    ("vgg16", "A", 10, CIFAR_SIZE,
     [32, 64, M, 128, 128, M, 256, 256, 256, M, 256, 256, 256, M, 256, 256, 256], 5_397_034, 243, [121, 182]),
    ("resnet56", "A", 10, CIFAR_SIZE,
     [14] * 7 + [16, 14] + [32] + [28] * 8 + [64] + [57] * 7 + [64], 773_336, 178, [89, 133]),
    ("resnet56", "B", 10, CIFAR_SIZE,
     [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64], 735_712, 220, [110, 165]),
    ("resnet110", "A", 10, CIFAR_SIZE, [8] * 17 + [16] + [32] * 18 + [64] * 18, 1_688_522, 190, [95, 142]),
    ("resnet110", "B", 10, CIFAR_SIZE,
     [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17, 1_168_424, 260, [130, 195]),
    ("resnet34", "A", 1000, IMAGENET_SIZE,
     [64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256, 512, 512, 512], 20_151_764, 106, [35, 70, 105]),
    ("resnet34", "B", 1000, IMAGENET_SIZE,
     [64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256, 512, 512, 512], 19_469_372, 118, [39, 78, 117]),
]  # fmt: skip


@pytest.mark.parametrize(("model", "variant", "classes", "size", "widths", "params", "epochs", "milestones"), PAPER)
def test_predefined_targets_match_the_paper(
    model: str,
    variant: str,
    classes: int,
    size: int,
    widths: list[Any],
    params: int,
    epochs: int,
    milestones: list[int],
) -> None:
    large = default_spec(model, classes)
    pruned = l1_target_spec(large, model, variant)
    assert _widths(pruned) == widths
    assert {**pruned.config, "cfg": None, "inner": None, "inner_widths": None} == {
        **large.config,
        "cfg": None,
        "inner": None,
        "inner_widths": None,
    }  # nothing but the pruned widths changes
    cost = spec_cost(pruned, size)
    assert cost.params == params
    ratio = spec_cost(large, size).flops / cost.flops
    if size == CIFAR_SIZE:
        budget = scratch_b_budget(160, ratio, (0.5, 0.75))
    else:
        budget = scratch_b_budget(90, ratio, (1 / 3, 2 / 3), cap=2.0, rule="step")
    assert (budget.epochs, budget.milestones, budget.capped) == (epochs, milestones, False)


def test_every_predefined_target_is_tested() -> None:
    assert sorted(PREDEFINED) == sorted((row[0], row[1]) for row in PAPER)


@pytest.mark.parametrize(
    ("model", "classes", "ids", "stages"),
    [
        ("resnet56", 10, list(range(2, 55, 2)), [0] * 9 + [1] * 9 + [2] * 9),
        ("resnet110", 10, list(range(2, 109, 2)), [0] * 18 + [1] * 18 + [2] * 18),
        ("resnet34", 1000, list(range(2, 33, 2)), [0] * 3 + [1] * 4 + [2] * 6 + [3] * 3),
        ("vgg16", 10, list(range(1, 14)), [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]),
        ("vgg11_bn", 1000, list(range(1, 9)), [0, 1, 2, 2, 3, 3, 4, 4]),
    ],
)
def test_conv_numbering_follows_the_reference(model: str, classes: int, ids: list[int], stages: list[int]) -> None:
    convs = prunable_convs(default_spec(model, classes), model)
    assert [c.conv_id for c in convs] == ids
    assert [c.stage for c in convs] == stages


def test_resnet56_stage_boundaries_by_conv_id() -> None:
    """paper-spec §5.1: conv1 ids <= 18 are stage 1, <= 36 stage 2, the rest stage 3."""
    for conv in prunable_convs(default_spec("resnet56", 10), "resnet56"):
        assert conv.stage == (0 if conv.conv_id <= 18 else 1 if conv.conv_id <= 36 else 2)


@pytest.mark.parametrize(
    ("model", "classes"),
    [("vgg16", 10), ("resnet56", 10), ("resnet34", 1000), ("resnet50", 1000), ("vgg11_bn", 1000),
     ("vgg16_imagenet", 1000)],
)  # fmt: skip
def test_numbering_names_the_built_modules(model: str, classes: int) -> None:
    spec = default_spec(model, classes)
    with torch.device("meta"):
        net = build(spec)
    convs = prunable_convs(spec, model)
    for conv in convs:
        module = net.get_submodule(conv.module)
        assert isinstance(module, nn.Conv2d) and module.out_channels == conv.width
    assert len({c.module for c in convs}) == len(convs)


def test_module_paths_of_vgg_features() -> None:
    vgg16 = prunable_convs(default_spec("vgg16", 10), "vgg16")
    assert [c.module for c in vgg16[:4]] == ["features.0", "features.3", "features.7", "features.10"]
    no_bn = prunable_convs(default_spec("vgg16_imagenet", 1000), "vgg16_imagenet")
    assert [c.module for c in no_bn[:4]] == ["features.0", "features.2", "features.5", "features.7"]


def test_variant_accepts_an_empty_skip_list() -> None:
    large = default_spec("resnet56", 10)
    assert l1_target_spec(large, "resnet56", "B", skip=[]) == l1_target_spec(large, "resnet56", "B")


def test_user_stage_ratios_on_resnet56() -> None:
    pruned = l1_target_spec(default_spec("resnet56", 10), "resnet56", stage_ratios=[0.5, 0.25, 0.0], skip=[2, 20])
    assert pruned.config["inner"] == [16] + [8] * 8 + [32] + [24] * 8 + [64] * 9
    assert spec_cost(pruned, CIFAR_SIZE).params < spec_cost(default_spec("resnet56", 10), CIFAR_SIZE).params


def test_user_ratios_on_vgg16() -> None:
    large = default_spec("vgg16", 10)
    by_stage = l1_target_spec(large, "vgg16", stage_ratios=[0.5, 0.5, 0.0, 0.0, 0.75], skip=[13])
    assert by_stage.config["cfg"] == [32, 32, M, 64, 64, M, 256, 256, 256, M, 512, 512, 512, M, 128, 128, 512]
    by_layer = l1_target_spec(large, "vgg16", layer_ratios=[0.5] + [0.0] * 6 + [0.5] * 6)
    assert by_layer == l1_target_spec(large, "vgg16", "A")


def test_user_ratios_on_bottleneck_resnet50() -> None:
    """Both inner convs of a bottleneck (ids 2+3b, 3+3b) are prunable; the 1x1 expansion conv is not."""
    large = default_spec("resnet50", 1000)
    widths = target_widths(large, "resnet50", L1Rule(stage_ratios=(0.5, 0.0, 0.0, 0.0), skip=(3,)))
    assert (widths[2], widths[3], widths[5], widths[6], widths[11]) == (32, 64, 32, 32, 128)
    assert 4 not in widths
    pruned = l1_target_spec(large, "resnet50", stage_ratios=[0.5, 0.0, 0.0, 0.0], skip=[3])
    assert pruned.config["inner_widths"][0] == [[32, 64], [32, 32], [32, 32]]


def test_target_widths_cover_every_prunable_conv() -> None:
    spec = default_spec("resnet56", 10)
    widths = target_widths(spec, "resnet56", l1_rule("resnet56", "B"))
    assert sorted(widths) == list(range(2, 55, 2))
    assert (widths[16], widths[18], widths[20], widths[22]) == (16, 16, 32, 22)


def test_planted_filter_norms_keep_the_largest() -> None:
    """Plant L1 norms in the first conv of ResNet-56-B and keep as many filters as the target says."""
    spec = default_spec("resnet56", 10)
    first = prunable_convs(spec, "resnet56")[0]
    conv = build(spec).get_submodule(first.module)
    planted = torch.tensor([5.0, 1.0, 9.0, 3.0, 9.5, 0.5, 7.0, 2.0, 8.0, 4.0, 6.0, 0.1, 0.2, 0.3, 0.4, 6.5])
    signs = torch.where(torch.rand(conv.weight.shape, generator=torch.Generator().manual_seed(0)) < 0.5, -1.0, 1.0)
    fan = conv.weight[0].numel()
    with torch.no_grad():
        conv.weight.copy_(signs * (planted / fan).view(-1, 1, 1, 1))
    scores = l1_filter_scores(conv.weight)
    assert torch.allclose(scores, planted)
    keep = target_widths(spec, "resnet56", l1_rule("resnet56", "B"))[first.conv_id]
    assert keep == 6
    assert keep_largest(scores, keep) == [2, 4, 6, 8, 10, 15]  # norms 9, 9.5, 7, 8, 6, 6.5


def test_keep_largest_breaks_ties_by_lower_index() -> None:
    scores = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 2.0])
    assert keep_largest(scores, 2) == [1, 2]
    assert keep_largest(scores, 4) == [1, 2, 3, 4]
    assert keep_largest(scores, 6) == list(range(6))


def test_l1_scores_of_a_linear_weight() -> None:
    assert l1_filter_scores(torch.tensor([[1.0, -2.0], [-0.5, 0.0]])).tolist() == [3.0, 0.5]


def test_keep_random_is_seeded_sorted_and_distinct() -> None:
    first = keep_random(64, 20, torch.Generator().manual_seed(3))
    assert first == keep_random(64, 20, torch.Generator().manual_seed(3))
    assert first == sorted(set(first)) and len(first) == 20 and 0 <= first[0] and first[-1] < 64
    assert first != keep_random(64, 20, torch.Generator().manual_seed(4))
    assert keep_random(5, 5, torch.Generator()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: keep_largest(torch.ones(4), 0), "number of channels to keep must be an integer in [1, 4], got 0"),
        (lambda: keep_largest(torch.ones(4), 5), "in [1, 4], got 5"),
        (lambda: keep_largest(torch.ones(2, 2), 1), "scores must be a 1-d tensor, got shape (2, 2)"),
        (lambda: keep_random(4, 5, torch.Generator()), "in [1, 4], got 5"),
        (lambda: l1_filter_scores(torch.ones(3)), "need a weight of shape (out, in, ...), got shape (3,)"),
    ],
)
def test_criteria_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@pytest.mark.parametrize(
    ("model", "classes", "kwargs", "message"),
    [
        ("vgg16", 10, {"variant": "B"}, "model 'vgg16' has no predefined L1-norm variant 'B'; accepted: A"),
        ("resnet56", 10, {"variant": "C"}, "model 'resnet56' has no predefined L1-norm variant 'C'; accepted: A, B"),
        ("vgg19", 10, {"variant": "A"},
         "model 'vgg19' has no predefined L1-norm variants (these exist: resnet110 A, B; resnet34 A, B;"),
        ("densenet40", 10, {"variant": "A"}, "model 'densenet40' (family 'cifar_densenet') declares no reference conv "
         "numbering (Family.filter_numbering), which L1-norm targets need"),
        ("preresnet164", 10, {"stage_ratios": [0.1] * 3}, "model 'preresnet164' (family 'cifar_preresnet') declares"),
        ("resnet56", 10, {"stage_ratios": [0.1, 1.0, 0.1]},
         "prune ratio 1.0 for model 'resnet56' is invalid; accepted: numbers in [0, 1)"),
        ("resnet56", 10, {"stage_ratios": [-0.1, 0.1, 0.1]}, "prune ratio -0.1 for model 'resnet56' is invalid"),
        ("resnet56", 10, {"stage_ratios": [0.1, 0.1]},
         "model 'resnet56' has 3 stages, so it needs 3 stage ratios, got 2: [0.1, 0.1]"),
        ("vgg16", 10, {"layer_ratios": [0.5] * 5},
         "model 'vgg16' has 13 prunable convs, so it needs 13 layer ratios, got 5"),
        ("resnet56", 10, {"stage_ratios": [0.1] * 3, "skip": [3, 16]},
         "skip id(s) [3] of model 'resnet56' are not prunable conv ids; accepted: 2, 4, ..., 54"),
        ("resnet34", 1000, {"stage_ratios": [0.1] * 4, "skip": [1]},
         "skip id(s) [1] of model 'resnet34' are not prunable conv ids; accepted: 2, 4, ..., 32"),
        ("resnet56", 10, {"stage_ratios": [0.95, 0.1, 0.1]},
         "model 'resnet56': conv 2 (layer1.0.conv1) would keep 0 of its 16 filters with prune ratio 0.95"),
        ("resnet56", 10, {"variant": "A", "skip": [2]}, "give either variant 'A' or ratios/skip, not both"),
        ("resnet56", 10, {}, "no target given. Name one of its predefined variants, pruner.variant=A or B, or give "
         "pruner.stage_ratios=[...] (one per stage) or pruner.layer_ratios=[...] (one per prunable conv)"),
        ("vgg11", 10, {}, "no target given. It has no predefined variant (these models have: resnet110 A, B; "
         "resnet34 A, B; resnet56 A, B; vgg16 A); give pruner.stage_ratios=[...]"),
        ("vgg16", 10, {"stage_ratios": [0.1] * 5, "layer_ratios": [0.1] * 13}, "exactly one of stage_ratios"),
    ],
)  # fmt: skip
def test_target_errors(model: str, classes: int, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        l1_target_spec(default_spec(model, classes), model, **kwargs)
