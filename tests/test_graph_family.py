"""The graph family (model=torchvision | timm): Torch-Pruning's channel groups, surgery equal to masking, strict
rebuilds from spec.json, the library's init at pruned widths, FlopCounterMode costs, and the refusals."""

from __future__ import annotations

import math
from importlib import metadata

import pytest
import torch
import torchvision
from conftest import compose_settings
from torch import nn

from rethink.arch import ArchSpec, build, default_spec, spec_cost
from rethink.arch.flop_counter import torch_flops
from rethink.arch.surgery import mask, prunable_groups, shrink, with_group_widths
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan

MODELS = [
    ("torchvision", "resnet18"),
    ("torchvision", "mobilenet_v2"),
    ("torchvision", "mobilenet_v3_small"),
    ("torchvision", "efficientnet_b0"),
    ("timm", "convnext_atto"),  # LayerNorm, layer scale
    ("timm", "seresnet18"),  # squeeze-excitation
]


def _trained_like(model: nn.Module) -> nn.Module:
    """Norm statistics and scales away from their init (and ConvNeXt's layer scales at 1), so masked channels
    would show if surgery dropped the wrong ones."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        for name, param in model.named_parameters():
            if name.endswith("gamma") or "layer_scale" in name:
                param.fill_(1.0)
    return model.eval()


@pytest.mark.parametrize("source,arch", MODELS)
def test_pruned_model_equals_masked_model_and_rebuilds_from_its_spec(source: str, arch: str) -> None:
    spec = default_spec(source, 10, arch=arch, cifar_stem=True)
    torch.manual_seed(0)
    model = _trained_like(build(spec))
    groups = prunable_groups(spec)
    generator = torch.Generator().manual_seed(0)
    keep = {g.name: sorted(torch.randperm(g.width, generator=generator)[: g.width // 2].tolist()) for g in groups}
    pruned_spec, small = shrink(model, spec, keep)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, got = mask(model, spec, keep).eval()(x), small.eval()(x)
    assert torch.allclose(got, expected, atol=1e-5 * max(1.0, float(expected.abs().max())), rtol=1e-5)
    # params and FLOPs shrink as planned: the planned spec (first channels) counts what the shrunk model counts
    planned = with_group_widths(spec, {g.name: g.width // 2 for g in groups})
    assert planned == pruned_spec
    assert spec_cost(planned, 32).params == sum(p.numel() for p in small.parameters()) < spec_cost(spec, 32).params
    assert spec_cost(planned, 32).flops == torch_flops(small, 32) < spec_cost(spec, 32).flops
    # spec.json + weights.pt: a strict load into the model the spec builds computes the same function
    rebuilt = build(ArchSpec.from_json(pruned_spec.to_json()))
    rebuilt.load_state_dict(small.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), got)


def test_spec_records_source_arch_kwargs_widths_and_versions() -> None:
    spec = default_spec("torchvision", 10, arch="mobilenet_v3_small", kwargs={"width_mult": 0.5}, cifar_stem=True)
    config = spec.config
    assert (config["source"], config["arch"], config["kwargs"], config["groups"]) == (
        "torchvision",
        "mobilenet_v3_small",
        {"width_mult": 0.5},
        "inner",
    )
    assert config["versions"]["torchvision"] == metadata.version("torchvision")
    assert set(config["versions"]) == {"torchvision", "torch_pruning"}
    assert config["widths"] == {g.name: g.width for g in prunable_groups(spec)}


def test_inner_groups_leave_the_residual_streams_and_all_prunes_them() -> None:
    inner = prunable_groups(default_spec("torchvision", 10, arch="resnet18"))
    every = prunable_groups(default_spec("torchvision", 10, arch="resnet18", groups="all"))
    assert [g.name for g in inner] == [f"layer{s}.{b}.conv1" for s in range(1, 5) for b in range(2)]
    streams = [g for g in every if g.name not in {i.name for i in inner}]
    assert [g.name for g in streams] == ["conv1"] + [f"layer{s}.0.downsample.0" for s in (2, 3, 4)]
    # a stream group is coupled: every conv writing into the additions produces its channels, every BN scales them
    stem = streams[0]
    assert stem.producers == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert stem.bns == ("bn1", "layer1.0.bn2", "layer1.1.bn2")


def _conv_stds(model: nn.Module) -> dict[str, tuple[int, float]]:
    return {
        n: (m.out_channels, float(m.weight.detach().std()))
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }


def test_a_scratch_model_starts_as_the_library_starts_a_network_of_its_widths() -> None:
    spec = default_spec("torchvision", 10, arch="resnet18")
    half = with_group_widths(spec, {g.name: g.width // 2 for g in prunable_groups(spec)})
    torch.manual_seed(0)
    scratch = build(half)
    for name, module in scratch.named_modules():
        if isinstance(module, nn.Conv2d) and module.weight.numel() > 4096:
            expected = math.sqrt(2.0 / (module.out_channels * module.kernel_size[0] * module.kernel_size[1]))
            assert abs(float(module.weight.detach().std()) / expected - 1) < 0.1, (
                name
            )  # kaiming fan_out at the pruned width
    # a slice of a full-width init is about 1/sqrt(2) too small for the halved convs
    torch.manual_seed(0)
    sliced = shrink(build(spec), spec, {"layer1.0.conv1": list(range(32))})[1].layer1[0].conv1.weight
    assert float(sliced.detach().std()) / math.sqrt(2.0 / (32 * 9)) < 0.8
    # against the library itself: MobileNetV2 at width_mult 0.5 has the same widths for most convs
    spec = default_spec("torchvision", 10, arch="mobilenet_v2")
    half = with_group_widths(spec, {g.name: g.width // 2 for g in prunable_groups(spec)})
    torch.manual_seed(0)
    ours = _conv_stds(build(half))
    library = _conv_stds(torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5))
    same = [n for n in ours if n in library and ours[n][0] == library[n][0] and ours[n][0] >= 48]
    assert len(same) >= 20
    for name in same:
        assert abs(ours[name][1] / library[name][1] - 1) < 0.1, name


def test_graph_costs_follow_the_torch_flop_counter_convention() -> None:
    spec = default_spec("timm", 10, arch="seresnet18", cifar_stem=True)
    cost = spec_cost(spec, 32)
    assert cost.convention == "torch_flop_counter"
    record = {"macs": cost.flops // 2, "torch_flop_counter": cost.flops, "convention": "torch_flop_counter"}
    assert cost.flops_record() == record
    with torch.device("meta"):
        assert cost.flops == torch_flops(build(spec), 32)
    assert spec_cost(default_spec("resnet56", 10), 32).flops_record()["convention"] == "paper"


CELL = ("dataset=digits", "model=torchvision", "model.arch=mobilenet_v3_small", "model.cifar_stem=true")


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (("model.arch=resnet19",), "close matches: resnet18"),
        (("model.groups=streams",), "model.groups='streams' is not one of inner, all"),
        (("model.arch=resnet18", "model.kwargs={no_such_kwarg:1}"), "does not take model.kwargs"),
        (("pruner=l1", "pruner.variant=A"), "conv numbering and stages of the reference L1-norm code"),
        (("pruner=thinet", "pruner.ratio=0.5"), "the single layer reading each channel group"),
        (("pruner=sss",), "removable residual blocks"),
        (("pruner=l1", "pruner.ratio=0.5", "pruner.variant=A"), "pruner.ratio=0.5 is a target of its own"),
    ],
)
def test_bad_graph_input_is_refused_before_training(overrides: tuple[str, ...], needle: str) -> None:
    with pytest.raises(UserError) as error:
        build_plan(compose_settings(*CELL, *overrides))
    assert needle in str(error.value)


def test_a_group_narrowed_to_zero_is_refused() -> None:
    spec = default_spec("torchvision", 10, arch="resnet18")
    with pytest.raises(ValueError, match=r"group 'layer1.0.conv1': width must be an integer in \[1, 64\], got 0"):
        with_group_widths(spec, {"layer1.0.conv1": 0})
    with pytest.raises(ValueError, match="would keep zero channels"):
        shrink(build(spec), spec, {"layer1.0.conv1": []})


def test_a_model_the_graph_cannot_trace_is_refused_naming_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from rethink.arch.graph import sources

    class Untraceable(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow on a meta tensor
                return x
            return x

    def create(arch: str, num_classes: int, kwargs: dict) -> nn.Module:
        model = torchvision.models.get_model(arch, num_classes=num_classes, **kwargs)
        model.layer2[1].conv1 = nn.Sequential(model.layer2[1].conv1, Untraceable())
        return model

    monkeypatch.setitem(
        sources.SOURCES, "torchvision", sources.Source("torchvision", "torchvision", create, lambda: ["resnet18"])
    )
    with pytest.raises(UserError, match=r"cannot trace ResNet: module 'layer2.1.conv1.1' failed"):
        # kwargs no other test uses: the groups of this model are not cached
        build_plan(compose_settings(*CELL, "model.arch=resnet18", "model.kwargs={zero_init_residual:true}"))
