"""ThiNet and regression-based channel pruning (docs/protocol.md#thinet, #regression): the published targets exactly,
the algorithms on planted redundancy, ResNet-50-2x from its released masks, bad input, and the report of their
published changes."""

from __future__ import annotations

import copy
import re
import statistics
from pathlib import Path

import pytest
import torch
import toy_plugins  # noqa: F401  (the toy family without channel groups)
from conftest import compose_settings

from rethink.arch import build, default_spec, spec_cost
from rethink.arch.surgery import group_widths, mask, shrink, with_group_widths
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning import PruneContext, create
from rethink.pruning.published_targets import REGRESSION, resnet50_2x_blocks
from rethink.pruning.regression import RegressionSettings, lasso_keep
from rethink.pruning.thinet import ThiNetSettings, greedy_removal
from rethink.results import comparison, render, tables

# variant: (pruner, model, params, Scratch-B epochs, LR drops); docs/protocol.md#thinet, #regression
PUBLISHED = {
    "vgg_conv": ("thinet", "vgg16_imagenet", 131_452_552, 180, [60, 120]),
    "vgg_gap": ("thinet", "vgg16_imagenet", 8_322_696, 180, [60, 120]),
    "vgg_tiny": ("thinet", "vgg16_imagenet", 1_325_368, 180, [60, 120]),
    "resnet50_30": ("thinet", "resnet50", 8_669_158, 180, [60, 120]),
    "resnet50_50": ("thinet", "resnet50", 12_385_704, 180, [60, 120]),
    "resnet50_70": ("thinet", "resnet50", 16_949_086, 141, [47, 94]),
    "vgg16_5x": ("regression", "vgg16_imagenet", 130_879_294, 180, [60, 120]),
    "resnet50_2x": ("regression", "resnet50", 19_697_424, 134, [44, 88, 132]),
}


def _published_plan(variant: str, *overrides: str) -> dict:
    pruner, model, *_ = PUBLISHED[variant]
    bias = ["model.downsample_bias=true"] if model == "resnet50" else []  # the ThiNet / regression ResNet-50
    settings = compose_settings(
        "dataset=imagenet", f"model={model}", f"pruner={pruner}", f"pruner.variant={variant}", *bias, *overrides
    )
    return build_plan(settings).to_dict()


@pytest.mark.parametrize("variant", sorted(PUBLISHED))
def test_published_targets_have_the_published_size_and_scratch_b_budget(variant: str) -> None:
    _, _, params, epochs, milestones = PUBLISHED[variant]
    plan = _published_plan(variant, "schedule=scratch_b")
    assert plan["models"]["pruned"]["params"] == params
    assert (plan["budget"]["epochs"], plan["budget"]["milestones"]) == (epochs, milestones)
    assert [s["name"] for s in plan["stages"]] == ["retrain"]  # a predefined target: no large model for scratch
    if variant == "resnet50_2x":  # the reference counts the 16 selection vectors (13,120 entries) as parameters
        assert plan["models"]["pruned"]["params_reference"] == 19_710_544
        assert "the original README gives 132 epochs" in plan["pruning"]["notes"][0]


def test_published_targets_of_a_width_scaled_model_keep_their_shape() -> None:
    plan = _published_plan("vgg_gap", "schedule=scratch_e", "model.width_multiplier=0.125")
    assert plan["models"]["pruned"]["params"] < plan["models"]["large"]["params"] / 10
    plan = _published_plan("resnet50_2x", "schedule=scratch_e", "model.width_multiplier=0.125")
    assert plan["pruning"]["achieved"]["flops_ratio"] > 1.2


def _planted_vgg11() -> tuple[torch.nn.Module, object]:
    """A quarter-width VGG-11 whose first conv has a channel (5) duplicating channel 3 with next-layer weights 1% of
    channel 3's, and a channel (7) the next layer ignores."""
    spec = default_spec("vgg11", 10, width_multiplier=0.25)
    torch.manual_seed(0)
    model = build(spec).eval()
    conv, bn, reader = model.features[0], model.features[1], model.features[4]
    with torch.no_grad():
        bn.bias.fill_(1.0), bn.running_mean.zero_(), bn.running_var.fill_(1.0)  # every channel active
        conv.weight[5], bn.weight[5] = conv.weight[3], bn.weight[3]
        reader.weight[:, 5] = 0.01 * reader.weight[:, 3]
        reader.weight[:, 7] = 0
    return model, spec


@pytest.mark.parametrize(
    "settings", [ThiNetSettings(ratio=0.5), RegressionSettings(ratio=0.5)], ids=["thinet", "regression"]
)
def test_the_redundant_channels_go_and_least_squares_reconstructs_the_next_layer_exactly(settings) -> None:
    model, spec = _planted_vgg11()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 3, 32, 32, generator=generator), torch.randint(10, (32,))) for _ in range(4)]
    target = with_group_widths(spec, {"features.0": 14})  # remove two channels of the first conv only
    pruner = create(settings, "vgg11")
    decision = pruner.decide(PruneContext(copy.deepcopy(model), spec, "vgg11", 1, target, batches=batches))
    assert sorted(set(range(16)) - set(decision.keep["features.0"])) == [5, 7]
    pruned = build(decision.spec).eval()
    pruned.load_state_dict(decision.state)
    x = torch.randn(8, 3, 32, 32, generator=generator)
    with torch.no_grad():
        expected, rebuilt = (net.features[4](net.features[:4](x)) for net in (model, pruned))
    assert torch.allclose(rebuilt, expected, atol=1e-4)  # channel 5 was a multiple of a kept one, 7 contributed 0
    layer = decision.notes["layers"]["features.0"]
    assert layer["error_kept"] > 1e-3 and layer[next(k for k in layer if k.startswith("error_r"))] < 1e-6
    assert decision.notes["calibration_images"] == 128 and decision.notes["samples"] == 2000


@pytest.mark.parametrize("variant", ["vgg_gap", "vgg_tiny"])
def test_thinet_gap_variants_thin_the_convs_then_swap_the_head(variant: str) -> None:
    large = default_spec("vgg16_imagenet", 10, width_multiplier=0.125)
    torch.manual_seed(0)
    model = build(large).eval()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 224, 224, generator=generator), torch.randint(10, (8,))) for _ in range(2)]
    pruner = create(ThiNetSettings(variant=variant, samples=200), "vgg16_imagenet")
    target = pruner.target(large)
    decision = pruner.decide(PruneContext(copy.deepcopy(model), large, "vgg16_imagenet", 3, target, batches=batches))
    assert decision.spec == target  # the published form: the convs thinned, a GAP head
    pruned = build(decision.spec).eval()
    pruned.load_state_dict(decision.state, strict=True)
    assert decision.notes["fresh_layers"] == ["classifier.0.weight", "classifier.0.bias"]
    x = batches[0][0][:2]
    with torch.no_grad():
        assert pruned(x).shape == (2, 10)
        first = decision.keep["features.0"]  # the first conv keeps its thinned trained filters
        assert torch.equal(pruned.features[0].weight, model.features[0].weight[first])
    again = pruner.apply(build(large), large, decision)  # e.g. the original init cut the same way (lottery)
    assert again.state_dict().keys() == pruned.state_dict().keys()
    assert torch.equal(again.classifier[0].weight, pruned.classifier[0].weight)  # the same fresh head (its seed)


def test_lasso_fills_with_channels_that_explain_nothing_more_and_reports_a_path_stopped_short() -> None:
    generator = torch.Generator().manual_seed(0)
    columns = torch.randn(500, 4, dtype=torch.float64, generator=generator)
    dead = torch.zeros(500, 2, dtype=torch.float64)
    contributions = torch.cat([columns, columns[:, :1] * 2, dead], 1)  # channel 4 = 2 x channel 0; 5, 6 dead
    target = columns @ torch.tensor([3.0, -2.0, 1.0, 0.5], dtype=torch.float64)
    assert lasso_keep(contributions, target, 2)[0] == [1, 4]  # 4 carries channel 0's part at half the L1 cost
    kept, _, filled = lasso_keep(contributions, target, 6)
    assert set(kept) >= {1, 2, 3} and len(kept) == 6 and filled >= 1  # the path ends at lambda 0 with 4 or 5
    with pytest.raises(ValueError, match=r"LASSO keeps at most 1 channels, not the target 3: its path stopped after 1"):
        lasso_keep(contributions, target, 3, max_steps=1)


def test_greedy_removal_takes_the_smallest_summed_contribution() -> None:
    contributions = torch.tensor([[1.0, 5.0, -1.0, 0.1], [2.0, 5.0, -2.0, 0.1]])
    assert greedy_removal(contributions, 1) == [3]
    assert sorted(greedy_removal(contributions, 3)) == [0, 2, 3]  # 0 and 2 cancel: their sum is 0


def test_resnet50_2x_is_built_from_the_released_masks_and_its_surgery_is_exact() -> None:
    blocks = resnet50_2x_blocks()
    assert [(len(b["selected"]), b["conv1"], b["conv2"]) for b in blocks][:3] == [
        (35, 64, 55),
        (101, 51, 39),
        (97, 50, 37),
    ]
    large = default_spec("resnet50", 10, downsample_bias=True, input_selection=True)
    target = REGRESSION["resnet50_2x"].make(large)
    widths = group_widths(target)
    names = [f"layer{s + 1}.{b}" for s, n in enumerate([3, 4, 6, 3]) for b in range(n)]
    assert [(widths[f"{n}.select"], widths[f"{n}.conv1"], widths[f"{n}.conv2"]) for n in names] == [
        (len(b["selected"]), b["conv1"], b["conv2"]) for b in blocks
    ]
    assert target.config["selected"][3][2] == blocks[-1]["selected"]  # the released mask itself
    torch.manual_seed(0)
    model = build(large).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1), module.bias.uniform_(-0.1, 0.1)
    keep = {f"{n}.select": b["selected"] for n, b in zip(names, blocks)}
    keep |= {f"{n}.conv{i}": list(range(b[f"conv{i}"])) for n, b in zip(names, blocks) for i in (1, 2)}
    pruned_spec, pruned = shrink(model, large, keep)
    assert group_widths(pruned_spec) == widths and pruned_spec.config["selected"] == target.config["selected"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(mask(model, large, keep)(x), pruned.eval()(x), atol=1e-4)
    assert spec_cost(pruned_spec, 224).params == spec_cost(target, 224).params


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("dataset=imagenet", "model=resnet50", "pruner=thinet", "pruner.variant=vgg_conv"),
         "variant 'vgg_conv' is a thinet target of model 'vgg16_imagenet'; accepted for model 'resnet50': resnet50_30"),
        (("dataset=cifar10", "model=vgg16", "pruner=regression", "pruner.variant=resnet50_2x"),
         "accepted for model 'vgg16': A"),
        (("dataset=cifar10", "model=vgg16", "pruner=thinet", "pruner.ratio=0"),
         "pruner.ratio=0.0: expected the per-layer compression in (0, 1)"),
        (("dataset=cifar10", "model=vgg16", "pruner=thinet", "pruner.ratio=1.0"),
         "pruner.ratio=1.0 (float): expected a number in [0, 1)"),
        (("dataset=cifar10", "model=vgg16", "pruner=thinet"), "pruner=thinet needs exactly one target"),
        (("dataset=cifar10", "model=vgg16", "pruner=regression", "pruner.variant=A", "pruner.ratio=0.5"),
         "needs exactly one target"),
        (("dataset=synthetic", "model=vgg16", "pruner=thinet", "pruner.variant=A", "dataset.batch_size=16"),
         "calibration: 16 images per batch x 4 output positions of layer 'features.34' = 64, fewer than the 250 "
         "samples per batch that pruner.samples=2000 needs over calibration.batches=8"),
        (("dataset=synthetic", "model=toyplain", "pruner=thinet", "pruner.ratio=0.5"),
         "pruner=thinet cannot prune model 'toyplain': its family 'toy_plain' does not declare its prunable channel"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_training(overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        build_plan(compose_settings(*overrides, "schedule=finetune"))


@pytest.mark.parametrize(
    "pruner, setting, message",
    [
        ("thinet", "pruner.samples=10000000", "lower pruner.samples, or raise calibration.batches"),
        ("regression", "pruner.lasso_rows=4", "the LASSO sees 4 (position, output) rows for 8 channels"),
    ],
)
def test_too_little_calibration_data_is_reported(tmp_path: Path, pruner: str, setting: str, message: str) -> None:
    overrides = ("dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=1")
    settings = compose_settings(*overrides, f"pruner={pruner}", "pruner.ratio=0.5", "pruner.samples=100", setting,
                                "calibration.batches=1",
                                "schedule=finetune", f"paths.artifact_dir={tmp_path}")  # fmt: skip
    with pytest.raises(UserError, match=re.escape(message)):
        run_cell(settings, tmp_path / "run")
    assert not list(tmp_path.glob("prune/*/manifest.json"))  # nothing stored for the failed decision


def test_calibration_batches_smaller_than_planned_are_reported_when_sampled() -> None:
    model, spec = _planted_vgg11()
    batches = [(torch.randn(2, 3, 32, 32), torch.randint(10, (2,)))]  # 2 images x 4 positions of the 2x2 convs
    context = PruneContext(model, spec, "vgg11", 1, with_group_widths(spec, {"features.22": 8}), batches=batches)
    with pytest.raises(UserError, match=re.escape("calibration: 2 images per batch x 4 output positions of layer")):
        create(ThiNetSettings(ratio=0.5, samples=100), "vgg11").decide(context)


def test_the_report_shows_the_published_changes_beside_ours() -> None:
    from test_report import fake

    requested = {"variant": "vgg_conv", "stage_ratios": None, "layer_ratios": None, "skip": None, "ratio": None}
    results = [
        fake("imagenet", "vgg16_imagenet", "thinet", "scratch_e", 1, 69.0, requested, pretrain=71.0),
        fake("imagenet", "vgg16_imagenet", "thinet", "finetune", 1, 70.5, requested, pretrain=71.0),
    ]
    for result in results:
        result["_file"] = "result.json"
    (table,) = tables.build_tables(results)
    assert table.title == "ThiNet (Luo et al., 2017)"
    markdown = render.to_markdown(table)
    header, row = (line.strip("| ").split(" | ") for line in markdown.splitlines()[2:5:2])
    cells = dict(zip(header, row))
    # best epochs (the report's default): 69.1 - 71.0; the paper's change of its own best-epoch runs
    assert cells["Scratch-E vs unpruned"] == "-1.90" and cells["Scratch-E vs unpruned (paper)"] == "-2.75 vs 71.51"
    assert cells["Fine-tuned vs unpruned (paper)"] == "-1.23 vs 71.03"  # the Caffe papers' own baseline


def test_the_report_compares_criteria_at_the_same_target() -> None:
    from test_report import fake

    requested = {"variant": "A", "stage_ratios": None, "layer_ratios": None, "skip": None, "ratio": None}
    pruned_top1 = {"l1": 10.0, "thinet": 30.0, "random": 9.0}
    results = []
    for pruner, top1 in pruned_top1.items():
        for seed in (1, 2):
            for schedule in ("finetune", "scratch_e"):
                result = fake("cifar10", "vgg16", pruner, schedule, seed, 93.0 + seed / 10, requested, pretrain=93.5)
                if schedule == "finetune":
                    accuracy = {"top1_final": top1 + seed}
                    result["stages"].insert(1, {"stage": "prune", "key": "k", "path": "/z", "accuracy": accuracy})
                results.append(result | {"_file": "result.json"})
    results.append(fake("cifar10", "resnet56", "l1", "finetune", 1, 93.0, requested) | {"_file": "result.json"})
    built = comparison.report_tables(results)
    assert [t.name for t in built] == ["l1", "thinet", "random", "criteria"]
    (row,) = built[-1].rows  # resnet56 was pruned by one criterion only: nothing to compare
    assert row.model == "vgg16" and list(row.cells) == ["unpruned"] + [
        f"{p}: {c}" for p in pruned_top1 for c in ("pruned", "fine-tuned")
    ]
    assert statistics.mean(row.cells["thinet: pruned"].values.values()) == 31.5
    assert statistics.mean(row.cells["random: fine-tuned"].values.values()) == pytest.approx(93.15 + 0.1)  # best
    markdown = render.table(results)
    assert "Channel selection criteria compared" in markdown and "thinet: pruned" in markdown
