"""Imported torchvision-format state dicts, with or without BatchNorm ``num_batches_tracked`` counters, load into our
models with torchvision's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from rethink.arch import build, default_spec
from rethink.errors import UserError
from rethink.training.checkpoints import load_weights

# Our model -> torchvision's builder of the same network (vgg11_bn has none: its classifier has BatchNorm1d layers).
TWINS = {"resnet34": "resnet34", "resnet50": "resnet50", "vgg16_bn": "vgg16_bn", "vgg16_imagenet": "vgg16"}
COUNTER = "num_batches_tracked"


def _trained_like(model: nn.Module) -> nn.Module:
    """``model`` with BatchNorm statistics and affine parameters away from their initial values (and counters at 7),
    so that a load that dropped or reset any of them changes the eval outputs."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
            module.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.mark.parametrize(
    "name, counters",
    [("resnet34", True), ("resnet34", False), ("resnet50", True), ("resnet50", False)]
    + [("vgg16_bn", True), ("vgg16_bn", False), ("vgg16_imagenet", True)],
)
def test_torchvision_state_dict_loads_with_torchvision_outputs(tmp_path: Path, name: str, counters: bool) -> None:
    torch.manual_seed(0)
    reference = _trained_like(getattr(torchvision.models, TWINS[name])(weights=None))
    state = {k: t for k, t in reference.state_dict().items() if counters or not k.endswith(COUNTER)}
    torch.save(state, tmp_path / "weights.pth")

    loaded = load_weights(tmp_path / "weights.pth", default_spec(name, 1000), name)

    tracked = {k: int(t) for k, t in loaded.items() if k.endswith(COUNTER)}
    assert set(tracked) == {k for k in reference.state_dict() if k.endswith(COUNTER)}
    assert set(tracked.values()) <= ({7} if counters else {0})  # the file's counters, else zeros
    with torch.device("meta"):  # every tensor comes from the file
        ours = build(default_spec(name, 1000))
    ours.load_state_dict(loaded, strict=True, assign=True)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(image)
        torch.testing.assert_close(ours.eval()(image), expected, rtol=1e-5, atol=1e-6)


def test_only_missing_batchnorm_counters_are_filled(tmp_path: Path) -> None:
    spec = default_spec("resnet56", 10, width_multiplier=0.25)
    state = {k: t for k, t in build(spec).state_dict().items() if not k.endswith(COUNTER)}
    torch.save(state, tmp_path / "old.pth")
    assert set(load_weights(tmp_path / "old.pth", spec, "resnet56")) == set(build(spec).state_dict())
    del state["bn1.running_var"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(UserError, match=r"does not fit model 'resnet56' \(missing: bn1.running_var \(1\)\)"):
        load_weights(tmp_path / "broken.pth", spec, "resnet56")
