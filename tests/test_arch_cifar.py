"""CIFAR models (paper-spec §4.1-4.6): shapes, exact §9 params, FLOPs, spec round-trips, pruned widths."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rethink.arch import MODELS, ArchSpec, build, default_spec, spec_cost
from rethink.arch.cost import count_params

NAMES = sorted(name for name, info in MODELS.items() if info.domain == "cifar")


# (model, num_classes, options, params, MFLOPs) from paper-spec §9 / §4; channel-selection entries excluded
# (they are buffers here): PreResNet-164 has 8,080 and DenseNet-40 9,360 of them.
REFERENCE: list[tuple[str, int, dict[str, Any], int, float | None]] = [
    ("vgg16", 10, {}, 14_987_722, 627.88),
    ("vgg16", 100, {}, 15_033_892, None),
    ("vgg19", 10, {"head": "linear"}, 20_035_018, 797.31),
    ("vgg19", 100, {"head": "linear"}, 20_081_188, 797.40),
    ("vgg19_bn", 10, {}, 20_040_522, 797.61),
    ("resnet56", 10, {}, 853_018, 252.57),
    ("resnet110", 10, {}, 1_727_962, 508.93),
    ("preresnet164", 10, {}, 1_711_338 - 8_080, 504.76),
    ("preresnet164", 100, {}, 1_734_468 - 8_080, 504.81),
    ("preresnet110", 10, {}, 1_146_842, 341.23),
    ("densenet40", 10, {}, 1_068_658 - 9_360, 573.05),
    ("densenet40", 100, {}, 1_109_788 - 9_360, 573.14),
    ("densenet_bc100", 10, {}, 769_162, 588.71),
]


@pytest.mark.parametrize(("name", "classes", "options", "params", "mflops"), REFERENCE)
def test_reference_params_and_flops(
    name: str, classes: int, options: dict[str, Any], params: int, mflops: float | None
) -> None:
    cost = spec_cost(default_spec(name, classes, **options), 32)
    assert cost.params == params
    if mflops is not None:
        assert cost.flops / 1e6 == pytest.approx(mflops, rel=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_json_round_trip(name: str) -> None:
    torch.manual_seed(0)
    spec = default_spec(name, 10)
    model = build(spec).eval()
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    torch.manual_seed(1)
    rebuilt = build(again).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.equal(out, rebuilt(x))


@pytest.mark.parametrize("name", NAMES)
def test_narrow_model_trains(name: str) -> None:
    spec = default_spec(name, 100, width_multiplier=0.25)
    model = build(spec).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100)
    out.sum().backward()
    assert count_params(model) < count_params(build(default_spec(name, 100))) / 8


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth;.*accepted: .*width_multiplier"):
        default_spec(name, 10, depth=3)


def test_selection_indices_are_buffers_and_json() -> None:
    spec = default_spec("densenet40", 10, width_multiplier=0.25)
    assert isinstance(spec.config["selected"][0][0], int)
    model = build(spec)
    state = model.state_dict()
    assert "dense1.0.select.indices" in state and "select.indices" in state
    assert not any("indices" in name for name, _ in model.named_parameters())


# §5.1 L1-norm pruned architectures: only the widths in the spec change.
VGG16_A = [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
PRUNED: list[tuple[str, str, list[Any], int, float]] = [
    ("vgg16", "cfg", VGG16_A, 5_397_034, 413.36),
    ("resnet56", "inner", [14] * 7 + [16, 14] + [32] + [28] * 8 + [64] + [57] * 7 + [64], 773_336, 226.39),
    ("resnet56", "inner", [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64], 735_712, 183.14),
    ("resnet110", "inner", [8] * 17 + [16] + [32] * 18 + [64] * 18, 1_688_522, 428.29),
    ("resnet110", "inner", [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17, 1_168_424, 312.75),
]


@pytest.mark.parametrize(("name", "key", "widths", "params", "mflops"), PRUNED)
def test_l1_pruned_widths(name: str, key: str, widths: list[Any], params: int, mflops: float) -> None:
    spec = default_spec(name, 10).replace_config(**{key: widths})
    cost = spec_cost(spec, 32)
    assert cost.params == params
    assert cost.flops / 1e6 == pytest.approx(mflops, rel=1e-3)


def test_slimming_pruned_preresnet_builds() -> None:
    spec = default_spec("preresnet164", 10, width_multiplier=0.25)
    selected = [list(s) for s in spec.config["selected"]]
    widths = [list(w) for w in spec.config["block_widths"]]
    selected[1], widths[1] = selected[1][::2], [len(selected[1][::2]), 2, 3]
    selected[-1] = selected[-1][1:]
    pruned = spec.replace_config(selected=selected, block_widths=widths, final_width=len(selected[-1]))
    model = build(pruned)
    assert model.layer1[1].conv1.in_channels == len(selected[1])
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="selected channels"):
        build(pruned.replace_config(final_width=len(selected[-1]) + 1))


def _downsampling_input_grad(detach: bool) -> torch.Tensor:
    """Input gradient of ResNet-56's first downsampling block with its residual branch cut off (conv1 = 0)."""
    model = build(default_spec("resnet56", 10, width_multiplier=0.25, detach_shortcut=detach)).eval()
    block = model.layer2[0]
    with torch.no_grad():
        block.conv1.weight.zero_()
    x = torch.randn(2, block.conv1.in_channels, 16, 16, requires_grad=True)
    block(x).sum().backward()
    assert x.grad is not None
    return x.grad


def test_detach_shortcut_stops_gradient() -> None:
    assert torch.count_nonzero(_downsampling_input_grad(detach=False)) > 0
    assert torch.count_nonzero(_downsampling_input_grad(detach=True)) == 0
