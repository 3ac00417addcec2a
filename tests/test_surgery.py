"""Channel surgery: masked large model == physically pruned model, for every family (DESIGN "Pruning")."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from torch import nn

from rethink.arch import ArchSpec, build, default_spec
from rethink.arch.registry import family_of
from rethink.arch.surgery import ChannelGroup, group_widths, mask, prunable_groups, remove_branches, shrink

# (model, options, input size): every family, small widths.
CASES: list[tuple[str, dict[str, Any], int]] = [
    ("vgg16", {"width_multiplier": 0.25}, 32),
    ("vgg19", {"width_multiplier": 0.25, "head": "linear"}, 32),
    ("vgg19_bn", {"width_multiplier": 0.25}, 32),
    ("resnet56", {"width_multiplier": 0.5}, 32),
    ("preresnet164", {"width_multiplier": 0.5}, 32),
    ("preresnet110", {"width_multiplier": 0.5}, 32),
    ("densenet40", {"width_multiplier": 0.5}, 32),
    ("densenet_bc100", {"width_multiplier": 0.5}, 32),
    ("resnet34", {"width_multiplier": 0.125}, 224),
    ("resnet50", {"width_multiplier": 0.125, "downsample_bias": True}, 224),
    ("vgg11_bn", {"width_multiplier": 0.125}, 224),
    ("vgg16_imagenet", {"width_multiplier": 0.125}, 224),
]


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics / affine parameters and biases, so zeroed channels really matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                bias.normal_(0.0, 0.1, generator=generator)
    return model.eval()


def _random_keep(groups: list[ChannelGroup], seed: int) -> dict[str, list[int]]:
    """Random kept sets: about a quarter of the groups untouched, the rest keep 1..width channels."""
    rng = random.Random(seed)
    keep = {}
    for group in groups:
        if rng.random() < 0.25:
            continue
        count = rng.randint(1, max(1, group.width - 1))
        keep[group.name] = sorted(rng.sample(range(group.width), count))
    return keep


def _output(model: nn.Module, size: int) -> torch.Tensor:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x)


def _assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * max(scale, 1e-3))


def _check_widths(model: nn.Module, spec: ArchSpec, keep: dict[str, list[int]], before: dict[str, int]) -> None:
    """Spec widths and module shapes equal the kept counts (untouched groups keep their widths)."""
    modules = dict(model.named_modules())
    for group in prunable_groups(spec):
        expected = len(keep[group.name]) if group.name in keep else before[group.name]
        assert group.width == expected, group.name
        module = modules[group.name]
        actual = module.indices.numel() if group.kind == "selection" else module.weight.shape[0]
        assert actual == expected, group.name
        if group.bn is not None and group.kind != "selection":
            assert modules[group.bn].running_mean.numel() == expected, group.bn


def _check_artifact(spec: ArchSpec, model: nn.Module) -> None:
    """The spec round-trips through JSON, its selections match the weights', and the weights load strictly."""
    reloaded = ArchSpec.from_json(spec.to_json())
    assert reloaded == spec
    fresh, state = build(reloaded), model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in fresh.state_dict().items() if k.endswith(".indices"))
    fresh.load_state_dict(state, strict=True)


@pytest.mark.parametrize(("name", "options", "size"), CASES, ids=[c[0] for c in CASES])
def test_shrink_matches_mask(name: str, options: dict[str, Any], size: int) -> None:
    torch.manual_seed(0)
    spec = default_spec(name, 10, **options)
    model = _randomise(build(spec), seed=0)
    groups = prunable_groups(spec)
    keep = _random_keep(groups, seed=0)
    assert any(len(kept) < group_widths(spec)[g] for g, kept in keep.items())

    masked_out = _output(mask(model, spec, keep), size)
    pruned_spec, pruned = shrink(model, spec, keep)
    assert pruned.training == model.training
    _assert_same(_output(pruned, size), masked_out)
    assert not torch.allclose(masked_out, _output(model, size), atol=1e-4)  # the pruning did something

    # Only widths / selections change; the pruned artifact reloads strictly from its JSON spec.
    assert [g.name for g in prunable_groups(pruned_spec)] == [g.name for g in groups]
    _check_widths(pruned, pruned_spec, keep, group_widths(spec))
    _check_artifact(pruned_spec, pruned)

    # Shrinking twice == masking the union of both prunings.
    second = _random_keep(prunable_groups(pruned_spec), seed=1)
    twice_spec, twice = shrink(pruned, pruned_spec, second)
    _check_artifact(twice_spec, twice)
    first = {g.name: keep.get(g.name, list(range(g.width))) for g in groups}
    composed = {g: [first[g][i] for i in kept] for g, kept in second.items()}
    _assert_same(_output(twice, size), _output(mask(mask(model, spec, keep), spec, composed), size))


def test_mask_zeroes_bn_and_producer_and_keeps_original() -> None:
    spec = default_spec("vgg16", 10, width_multiplier=0.125)
    model = _randomise(build(spec), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masked = mask(model, spec, {"features.0": [0, 2]})
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    dropped = [i for i in range(8) if i not in (0, 2)]
    assert masked.features[0].weight[dropped].abs().sum() == 0
    assert masked.features[1].weight[dropped].abs().sum() == 0 and masked.features[1].bias[dropped].abs().sum() == 0
    assert masked.features[1].weight[[0, 2]].abs().min() > 0


def test_selection_keeps_bn_full_size_and_composes_indices() -> None:
    spec = default_spec("densenet40", 10, width_multiplier=0.25)
    model = build(spec)
    pruned_spec, pruned = shrink(model, spec, {"dense1.2.select": [1, 3, 5], "select": [0, 4]})
    assert pruned_spec.config["selected"][2] == [1, 3, 5] and pruned_spec.config["in_widths"][2] == 3
    assert pruned.dense1[2].bn1.num_features == spec.config["in_widths"][2]
    assert pruned.fc.in_features == 2
    again, _ = shrink(pruned, pruned_spec, {"dense1.2.select": [0, 2]})
    assert again.config["selected"][2] == [1, 5]
    assert torch.equal(build(again).dense1[2].select.indices, torch.tensor([1, 5]))


def test_imagenet_vgg_first_linear_keeps_7x7_columns() -> None:
    spec = default_spec("vgg11_bn", 10, width_multiplier=0.0625)
    model = build(spec)
    _, pruned = shrink(model, spec, {"features.25": [1, 3]})
    weight = model.classifier[0].weight
    expected = torch.cat([weight[:, 49:98], weight[:, 147:196]], 1)
    assert torch.equal(pruned.classifier[0].weight, expected)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ({"features.99": [0]}, "unknown channel group"),
        ({"features.0": []}, "at least one channel must be kept"),
        ({"features.0": [3, 1]}, "sorted and unique"),
        ({"features.0": [1, 1]}, "sorted and unique"),
        ({"features.0": [0, 16]}, r"\[0, 16\)"),
        ({"features.0": [-1, 0]}, r"\[0, 16\)"),
        ({"classifier.0": [0.5]}, "integers"),
    ],
)
def test_bad_keep_sets(keep: dict[str, list[Any]], message: str) -> None:
    spec = default_spec("vgg16", 10, width_multiplier=0.25)
    model = build(spec)
    for operation in (shrink, mask):
        with pytest.raises(ValueError, match=message) as error:
            operation(model, spec, keep)
        assert next(iter(keep)) in str(error.value)


def test_selection_mismatch_between_model_and_spec() -> None:
    spec = default_spec("preresnet164", 10, width_multiplier=0.25)
    model = build(spec)
    model.select.indices = model.select.indices.flip(0)
    with pytest.raises(ValueError, match="'select'"):
        shrink(model, spec, {"select": [0]})


@pytest.mark.parametrize(
    ("name", "options", "count", "kinds"),
    [
        ("vgg16", {}, 14, {"conv": 13, "linear": 1}),
        ("vgg19", {"head": "linear"}, 16, {"conv": 16}),
        ("resnet56", {}, 27, {"conv": 27}),
        ("preresnet164", {}, 163, {"selection": 55, "conv": 108}),
        ("preresnet110", {}, 72, {"conv": 72}),
        ("densenet40", {}, 39, {"selection": 39}),
        ("densenet_bc100", {}, 48, {"conv": 48}),
        ("resnet34", {}, 16, {"conv": 16}),
        ("resnet50", {}, 32, {"conv": 32}),
        ("vgg11_bn", {}, 10, {"conv": 8, "linear": 2}),
        ("vgg16_imagenet", {}, 15, {"conv": 13, "linear": 2}),
    ],
)
def test_prunable_group_counts(name: str, options: dict[str, Any], count: int, kinds: dict[str, int]) -> None:
    spec = default_spec(name, 10, **options)
    groups = prunable_groups(spec)
    assert len(groups) == count
    assert {k: sum(g.kind == k for g in groups) for k in kinds} == kinds
    assert len({g.name for g in groups}) == count


def test_group_names_and_widths() -> None:
    spec = default_spec("preresnet164", 10)
    widths = group_widths(spec)
    assert list(widths)[:4] == ["layer1.0.select", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.select"]
    assert widths["layer1.1.select"] == 64 and widths["layer3.0.conv2"] == 64 and widths["select"] == 256
    first = prunable_groups(spec)[0]
    assert first == ChannelGroup("layer1.0.select", 16, None, "layer1.0.bn1", "selection")
    resnet50 = {g.name: g for g in prunable_groups(default_spec("resnet50", 10))}
    assert resnet50["layer2.0.conv2"] == ChannelGroup("layer2.0.conv2", 128, "layer2.0.conv2", "layer2.0.bn2", "conv")
    assert "layer2.0.conv3" not in resnet50
    vgg = {g.name: g for g in prunable_groups(default_spec("vgg16_imagenet", 10))}
    assert vgg["classifier.3"] == ChannelGroup("classifier.3", 4096, "classifier.3", None, "linear")


@pytest.mark.parametrize("name", ["preresnet164", "preresnet110"])
@pytest.mark.parametrize("drop_identity", [True, False])
def test_dead_preresnet_branches_are_removed(name: str, drop_identity: bool) -> None:
    """A branch whose last BN is all zero outputs 0: removing it computes the same. The block keeps its shortcut; an
    identity block leaves its stage (``drop_identity``) or stays in place as ``nn.Identity``."""
    spec = default_spec(name, 10, width_multiplier=0.25)
    model = _randomise(build(spec), seed=2)
    dead = ("layer1.0", "layer2.3", "layer3.5")  # a projection block and two identity blocks
    with torch.no_grad():
        for path in dead:
            model.get_submodule(f"{path}.bn3").weight.zero_()
            model.get_submodule(f"{path}.bn3").bias.zero_()
    blocks = family_of(spec).residual_blocks.blocks(spec)
    keep = [[block.path not in dead for block in stage] for stage in blocks]
    pruned_spec, pruned, old_of_new = remove_branches(model, spec, keep, drop_identity)

    n = spec.config["blocks"][0]
    assert pruned_spec.config["blocks"] == ([n, n - 1, n - 1] if drop_identity else [n] * 3)
    removed = [k for k, widths in enumerate(pruned_spec.config["block_widths"]) if not widths]
    assert removed == ([0] if drop_identity else [0, n + 3, 2 * n + 5])
    assert [name for name, _ in pruned.layer1[0].named_parameters()] == ["downsample.weight"]
    assert isinstance(pruned.layer2[3], nn.Identity) != drop_identity
    assert old_of_new["layer2.3"].path == ("layer2.4" if drop_identity else "layer2.3")
    if not drop_identity:  # module paths, and so group names, are unchanged
        names = [g.name for g in prunable_groups(spec) if not g.name.startswith(tuple(f"{p}." for p in dead))]
        assert [g.name for g in prunable_groups(pruned_spec)] == names
    _assert_same(_output(pruned, 32), _output(model, 32))
    _check_artifact(pruned_spec, pruned)
