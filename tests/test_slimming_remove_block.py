"""Network slimming with ``on_empty=remove_block`` (Table 13, heavy pruning; docs/protocol.md#slimming): a residual
branch whose group the global threshold empties is removed physically, the block keeping its shortcut in place, and
the pruned net computes what the reference's mask implementation computes with that branch dead."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import compose_settings
from test_surgery import _assert_same, _output
from torch import nn

from rethink.arch import ArchSpec, build, default_spec, spec_cost
from rethink.arch.cost import count_params
from rethink.arch.family import config_get
from rethink.arch.surgery import group_slots, group_widths, prunable_groups
from rethink.errors import UserError
from rethink.pipeline import keys
from rethink.pipeline.plan import build_plan
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.slimming import Slimming, SlimmingSettings, global_threshold_cut, slim
from rethink.pruning.uniform import uniform_target

BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _small_preresnet() -> ArchSpec:
    """PreResNet-164 with channel selection, 2 blocks per stage, quarter width (planes 4/8/16, stream 16/32/64)."""
    spec = default_spec("preresnet164", 10, width_multiplier=0.25)
    config, first = spec.config, [0, 1, 18, 19, 36, 37]
    return spec.replace_config(
        blocks=[2, 2, 2],
        block_widths=[config["block_widths"][i] for i in first],
        selected=[config["selected"][i] for i in first] + [config["selected"][-1]],
    )


def _planted(spec: ArchSpec, zero: str | None, seed: int = 0) -> nn.Module:
    """A model of ``spec`` with distinct |gamma| > 0 over every BN, random shifts and running statistics (so a
    zeroed channel matters), and the BN ``zero``'s scales all 0: the global threshold empties its group."""
    torch.manual_seed(seed)
    model = build(spec)
    generator = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, BN)]
    total = sum(m.num_features for m in bns)
    magnitudes = (torch.randperm(total, generator=generator) + 1).float() / total
    start = 0
    with torch.no_grad():
        for module in bns:
            n = module.num_features
            module.weight.copy_(magnitudes[start : start + n])
            module.bias.normal_(0.0, 0.3, generator=generator)
            module.running_mean.normal_(0.0, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            start += n
        if zero is not None:
            model.get_submodule(zero).weight.zero_()
    return model.eval()


def _reference_mask(
    model: nn.Module, spec: ArchSpec, keep: dict[str, list[int]], dead: tuple[str, ...] = ()
) -> nn.Module:
    """The reference's mask implementation: a copy with the BN scales and shifts of every pruned channel zeroed
    (full-size BNs at their pruned selected positions); the blocks in ``dead`` also get every BN of their branch
    zeroed (a dead branch outputs 0)."""
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for slot in group_slots(spec):
            group = slot.group
            if group.name not in keep:
                continue
            dropped = [i for i in range(group.width) if i not in keep[group.name]]
            if slot.selection_path is not None:
                dropped = [config_get(spec.config, slot.selection_path)[i] for i in dropped]
            bn = masked.get_submodule(str(group.bn))
            bn.weight[dropped] = 0.0
            bn.bias[dropped] = 0.0
        for path in dead:
            for module in masked.get_submodule(path).modules():
                if isinstance(module, BN):
                    module.weight.zero_()
                    module.bias.zero_()
    return masked


def _branch_cost(cin: int, widths: list[int], out: int, size: int, stride: int) -> tuple[int, int]:
    """Params and paper FLOPs of a pre-activation bottleneck branch, counted by hand: BN-select-ReLU-1x1-BN-ReLU-
    3x3(stride)-BN-ReLU-1x1 on a ``size``-pixel-square input of ``cin`` stream channels."""
    c0, c1, c2 = widths
    full, small = size * size, (size // stride) ** 2
    params = 2 * cin + c0 * c1 + 2 * c1 + 9 * c1 * c2 + 2 * c2 + c2 * out
    flops = (2 * cin + c0 + 2 * c0 * c1 + 2 * c1 + c1) * full + (2 * 9 * c1 * c2 + 2 * c2 + c2 + 2 * c2 * out) * small
    return params, flops


# ------------------------------------------------------------------------------------------------- PreResNet


@pytest.mark.parametrize(
    ("block", "index", "size", "stride"),
    [("layer2.1", 3, 16, 1), ("layer2.0", 2, 32, 2)],  # identity shortcut; downsampling shortcut (1x1 projection)
)
def test_planted_empty_group_removes_exactly_its_branch(block: str, index: int, size: int, stride: int) -> None:
    spec = _small_preresnet()
    model = _planted(spec, f"{block}.bn3")
    cut = global_threshold_cut(model, spec, 0.0, on_empty="remove_block")  # ratio 0: the zeros alone go
    assert cut.threshold == 0.0 and cut.emptied == [f"{block}.conv2"]
    pruned_spec, pruned, removed = slim(model, spec, cut.keep)

    assert removed == [block]
    assert pruned_spec.config["blocks"] == [2, 2, 2]  # the block stays, as its shortcut
    assert pruned_spec.config["block_widths"][index] == [] and pruned_spec.config["selected"][index] == []
    others = [i for i in range(6) if i != index]
    assert [pruned_spec.config["block_widths"][i] for i in others] == [spec.config["block_widths"][i] for i in others]
    assert not any(g.name.startswith(f"{block}.") for g in prunable_groups(pruned_spec))
    left = pruned.get_submodule(block)
    shortcut = [name for name, _ in left.named_parameters()]
    assert shortcut == ([] if stride == 1 else ["downsample.weight"])
    assert isinstance(left, nn.Identity) == (stride == 1)

    # params and FLOPs fall by exactly the branch, counted by hand
    before, after = spec_cost(spec, 32), spec_cost(pruned_spec, 32)
    widths = spec.config["block_widths"][index]
    assert widths == [32 // stride, 8, 8]  # every stream channel selected: conv1 reads the block's whole input
    params, flops = _branch_cost(widths[0], widths, 32, size, stride)
    assert (before.params - after.params, before.flops - after.flops) == (params, flops)
    assert count_params(pruned) == after.params

    # the physically pruned net computes the masked one: the reference's mask zeroes bn3, so the branch outputs 0
    masked = _reference_mask(model, spec, cut.keep)
    _assert_same(_output(pruned, 32), _output(masked, 32))
    assert not torch.allclose(_output(pruned, 32), _output(model, 32), atol=1e-3)
    again = ArchSpec.from_json(pruned_spec.to_json())
    build(again).load_state_dict(pruned.state_dict(), strict=True)


@pytest.mark.parametrize(("bn", "group"), [("bn1", "select"), ("bn2", "conv1"), ("bn3", "conv2")])
def test_any_emptied_group_of_a_branch_removes_it_with_the_others_pruned(bn: str, group: str) -> None:
    spec = _small_preresnet()
    model = _planted(spec, f"layer3.1.{bn}", seed=3)
    cut = global_threshold_cut(model, spec, 0.3, on_empty="remove_block")
    assert cut.emptied == [f"layer3.1.{group}"]
    pruned_spec, pruned, removed = slim(model, spec, cut.keep)
    assert removed == ["layer3.1"]
    # other groups are thinned as usual
    widths = group_widths(pruned_spec)
    assert {name: len(cut.keep[name]) for name in widths if name in cut.keep} == widths
    assert sum(widths.values()) < sum(w for n, w in group_widths(spec).items() if not n.startswith("layer3.1."))
    # the dead branch: every BN of the removed block zeroed, the kept channels masked as the reference does
    _assert_same(_output(pruned, 32), _output(_reference_mask(model, spec, cut.keep, dead=("layer3.1",)), 32))
    # the reference's mask of the emptied group alone is that dead branch only when it is the last BN (bn3): an
    # emptied bn1 / bn2 still passes the shifts of the BNs after it (docs/protocol.md#deviations)
    reference = _output(_reference_mask(model, spec, cut.keep), 32)
    assert torch.allclose(_output(pruned, 32), reference, atol=1e-5) == (bn == "bn3")


def test_emptied_head_selection_names_the_layer_and_suggests_keep_min() -> None:
    spec = _small_preresnet()
    model = _planted(spec, "bn")  # the head's full-size BN: its selection group 'select' is read by fc
    cut = global_threshold_cut(model, spec, 0.0, on_empty="remove_block")
    assert cut.emptied == ["select"] and cut.keep["select"] == []
    with pytest.raises(ValueError, match=r"group\(s\) select, but they lie in no residual branch.*on_empty=keep_min"):
        slim(model, spec, cut.keep)
    keep_min = global_threshold_cut(model, spec, 0.0, on_empty="keep_min")
    assert keep_min.emptied == ["select"] and len(keep_min.keep["select"]) == 1


def test_min_channels_tops_up_short_groups_that_are_not_empty() -> None:
    spec = _small_preresnet()
    model = _planted(spec, "layer1.1.bn3")
    with torch.no_grad():
        model.layer2[1].bn2.weight[1:] = 0.0  # 1 of 8 channels above the threshold
    cut = global_threshold_cut(model, spec, 0.0, min_channels=2, on_empty="remove_block")
    assert cut.keep["layer1.1.conv2"] == [] and len(cut.keep["layer2.1.conv1"]) == 2


# ------------------------------------------------------------------------------------- other residual families


@pytest.mark.parametrize(
    ("name", "options", "size", "bn", "block"),
    [
        ("resnet56", {"width_multiplier": 0.25}, 32, "layer2.3.bn1", "layer2.3"),
        ("resnet56", {"width_multiplier": 0.25}, 32, "layer3.0.bn1", "layer3.0"),
        ("resnet34", {"width_multiplier": 0.125}, 224, "layer3.2.bn1", "layer3.2"),
    ],
)
def test_plain_resnets_remove_the_branch_in_place(
    name: str, options: dict[str, float], size: int, bn: str, block: str
) -> None:
    spec = default_spec(name, 10, **options)
    model = _planted(spec, bn, seed=1)
    cut = global_threshold_cut(model, spec, 0.0, on_empty="remove_block")
    pruned_spec, pruned, removed = slim(model, spec, cut.keep)
    assert removed == [block]
    assert [n for n, _ in pruned.named_modules()] == [
        n for n, _ in model.named_modules() if not n.startswith(f"{block}.") or n.startswith(f"{block}.relu")
    ]
    branch = sum(p.numel() for n, p in model.named_parameters() if n.startswith(f"{block}."))
    assert count_params(pruned) == count_params(model) - branch
    # the stream BN after the branch (not in the pool) is part of the dead branch: the block is relu(shortcut(x))
    _assert_same(_output(pruned, size), _output(_reference_mask(model, spec, cut.keep, dead=(block,)), size))


# -------------------------------------------------------------------------------------- the pruner and the plan


def _decide(spec: ArchSpec, model: nn.Module, on_empty: str, ratio: float = 0.0) -> Decision:
    slimming = Slimming(SlimmingSettings(ratio=ratio, on_empty=on_empty), "preresnet164")
    return slimming.decide(PruneContext(model, spec, "preresnet164", seed=1))


def test_decision_records_emptied_groups_and_removed_blocks(tmp_path: Path) -> None:
    spec = default_spec("preresnet164", 10, width_multiplier=0.125)
    model = _planted(spec, "layer1.4.bn2")
    decision = _decide(spec, model, "remove_block")
    removed_groups = ["layer1.4.select", "layer1.4.conv1", "layer1.4.conv2"]
    assert decision.notes == {
        "threshold": 0.0,
        "emptied_groups": ["layer1.4.conv1"],
        "removed_blocks": ["layer1.4"],
        "removed_groups": removed_groups,
    }
    assert all(decision.keep[name] == [] for name in removed_groups)
    assert decision.spec.config["block_widths"][4] == []
    decision.save(tmp_path)
    saved = Decision.load(tmp_path)
    assert saved.notes == decision.notes and saved.keep == decision.keep
    # the original initialisation is cut the same way (lottery): same spec, same state entries
    cut_init = Slimming(SlimmingSettings(on_empty="remove_block"), "preresnet164").apply(build(spec), spec, saved)
    assert set(cut_init.state_dict()) == set(decision.state)
    build(decision.spec).load_state_dict(cut_init.state_dict(), strict=True)

    # keep_min tops the group up and records it as emptied, without removing anything
    kept = _decide(spec, model, "keep_min")
    assert kept.notes == {"threshold": 0.0, "emptied_groups": ["layer1.4.conv1"]}
    assert len(kept.keep["layer1.4.conv1"]) == 1

    # result.json: the resolved plan carries the notes; the removed groups count as pruned channels
    settings = compose_settings(
        "dataset=cifar10",
        "model=preresnet164",
        "model.width_multiplier=0.125",
        "pruner=slimming",
        "pruner.on_empty=remove_block",
        "schedule=finetune",
    )
    plan = build_plan(settings)
    assert plan.large == spec
    pruning = plan.resolve(decision.spec, None, decision.notes).to_dict()["pruning"]
    assert pruning["decision"] == decision.notes and pruning["requested"]["on_empty"] == "remove_block"
    before = group_widths(spec)
    assert set(pruning["widths"]["after"]) == set(before) - set(removed_groups)
    gone = sum(before[name] for name in removed_groups)
    assert pruning["achieved"]["channels_pruned_fraction"] == round(gone / sum(before.values()), 6)


def test_prune_key_differs_and_the_sparsity_pretrain_is_shared() -> None:
    base = ("dataset=cifar10", "model=preresnet164", "pruner=slimming", "pruner.ratio=0.9", "schedule=finetune")
    keep_min = build_plan(compose_settings(*base))
    remove = build_plan(compose_settings(*base, "pruner.on_empty=remove_block"))
    assert keys.pretrain_key(keep_min) == keys.pretrain_key(remove)
    source = keys.pretrain_key(keep_min)
    assert keys.prune_key(keep_min, source, 1) != keys.prune_key(remove, source, 1)


@pytest.mark.parametrize("model", ["vgg19", "densenet40"])
def test_non_residual_models_are_refused_before_training(model: str) -> None:
    settings = compose_settings(
        "dataset=cifar10", f"model={model}", "pruner=slimming", "pruner.on_empty=remove_block", "schedule=finetune"
    )
    with pytest.raises(UserError, match=rf"model '{model}'.*on_empty=remove_block.*residual model.*keep_min"):
        build_plan(settings)


def test_emptied_layer_outside_a_branch_is_named_at_prune_time() -> None:
    spec = default_spec("vgg19", 10, head="linear", width_multiplier=0.125)
    model = _planted(spec, "features.4")
    with pytest.raises(ValueError, match=r"features\.3, but family 'cifar_vgg' declares no residual blocks.*keep_min"):
        slim(model, spec, global_threshold_cut(model, spec, 0.0, on_empty="remove_block").keep)
    head = _small_preresnet()
    with pytest.raises(UserError, match=r"pruner=slimming: .*select.*keep_min.*reuses it"):
        _decide(head, _planted(head, "bn"), "remove_block")


def test_uniform_control_of_a_spec_with_removed_blocks() -> None:
    spec = default_spec("preresnet164", 10, width_multiplier=0.125)
    decision = _decide(spec, _planted(spec, "layer2.3.bn3"), "remove_block", ratio=0.5)
    uniform = uniform_target(spec, decision.spec)
    assert list(group_widths(uniform)) == list(group_widths(spec))  # every block keeps its branch
    total = sum(group_widths(decision.spec).values())
    assert abs(sum(group_widths(uniform).values()) - total) <= len(group_widths(spec)) / 2
