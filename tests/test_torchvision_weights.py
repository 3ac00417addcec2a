"""torchvision's ImageNet weights as the large model: ``pretrain.weights=torchvision`` finds them in the local torch hub
cache (never downloading) when the plan is built, and any torchvision-format state dict, with or without BatchNorm
``num_batches_tracked`` counters, loads into our models with torchvision's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import compose_settings
from torch import nn

from rethink.arch import build, default_spec
from rethink.errors import UserError
from rethink.pipeline import keys
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pipeline.store import sha256_file
from rethink.training.checkpoints import TORCHVISION_BUILDERS, load_weights

# Our model -> torchvision's builder of the same network, and the options that make it so
TWINS = {"resnet34": "resnet34", "resnet50": "resnet50", "vgg16_bn": "vgg16_bn", "vgg16_imagenet": "vgg16"}
TWINS["vgg11_bn"] = "vgg11_bn"
OPTIONS = {"vgg11_bn": {"classifier": "torchvision"}}
COUNTER = "num_batches_tracked"
FINETUNE_L1 = ("dataset=imagenet", "model=resnet34", "pruner=l1", "pruner.variant=A", "schedule=finetune")


def _hub_file(builder: str) -> str:
    """The file name torchvision gives its IMAGENET1K_V1 weights of ``builder`` in the hub cache."""
    return torchvision.models.get_model_weights(builder).IMAGENET1K_V1.url.rsplit("/", 1)[-1]


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


def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache (``TORCH_HOME``); returns its ``checkpoints`` folder, which does not exist yet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _no_downloads(monkeypatch)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_every_torchvision_twin_is_offered() -> None:
    assert TORCHVISION_BUILDERS == TWINS


@pytest.mark.parametrize(
    "name, counters",
    [("resnet34", True), ("resnet34", False), ("resnet50", True), ("resnet50", False)]
    + [("vgg16_bn", True), ("vgg16_bn", False), ("vgg16_imagenet", True), ("vgg11_bn", True), ("vgg11_bn", False)],
)
def test_torchvision_state_dict_loads_with_torchvision_outputs(tmp_path: Path, name: str, counters: bool) -> None:
    torch.manual_seed(0)
    reference = _trained_like(getattr(torchvision.models, TWINS[name])(weights=None))
    state = {k: t for k, t in reference.state_dict().items() if counters or not k.endswith(COUNTER)}
    torch.save(state, tmp_path / "weights.pth")

    spec = default_spec(name, 1000, **OPTIONS.get(name, {}))
    loaded = load_weights(tmp_path / "weights.pth", spec, name)

    tracked = {k: int(t) for k, t in loaded.items() if k.endswith(COUNTER)}
    assert set(tracked) == {k for k in reference.state_dict() if k.endswith(COUNTER)}
    assert set(tracked.values()) <= ({7} if counters else {0})  # the file's counters, else zeros
    with torch.device("meta"):  # every tensor comes from the file
        ours = build(spec)
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


def test_missing_torchvision_file_stops_the_plan_naming_file_and_fetch(hub: Path) -> None:
    expected = hub / _hub_file("resnet34")
    with pytest.raises(UserError) as error:
        build_plan(compose_settings(*FINETUNE_L1, "pretrain.weights=torchvision"))
    message = str(error.value)
    assert message.startswith("pretrain.weights=torchvision: torchvision's ImageNet weights of model 'resnet34'")
    assert f"expected {expected}." in message and "never downloads" in message
    assert "torchvision.models.resnet34(weights='IMAGENET1K_V1')" in message and "TORCH_HOME" in message
    assert not hub.exists()  # nothing fetched or created


def test_a_dry_run_reports_the_missing_torchvision_file(hub: Path) -> None:
    plan = build_plan(compose_settings(*FINETUNE_L1, "pretrain.weights=torchvision", "dry_run=true"))
    imports = plan.to_dict()["stages"][0]["imports"]
    assert imports["file"] == str(hub / _hub_file("resnet34")) and imports["found"] is False
    assert "torchvision.models.resnet34(weights='IMAGENET1K_V1')" in imports["error"]


@pytest.mark.parametrize("model", ["resnet50", "vgg16_bn", "vgg16_imagenet", "vgg11_bn"])
def test_torchvision_resolves_to_the_file_in_the_hub_cache(hub: Path, model: str) -> None:
    hub.mkdir(parents=True)
    (hub / _hub_file(TWINS[model])).write_bytes(b"stand-in")
    options = [f"model.{k}={v}" for k, v in OPTIONS.get(model, {}).items()]
    overrides = ("dataset=imagenet", f"model={model}", *options, "pruner=magnitude", "schedule=finetune")
    plan = build_plan(compose_settings(*overrides, "pretrain.weights=torchvision"))
    assert plan.pretrained_weights == str(hub / _hub_file(TWINS[model]))
    assert plan.to_dict()["stages"][0]["imports"] == {"file": plan.pretrained_weights, "found": True}


def test_scratch_cells_of_a_predefined_target_import_nothing(hub: Path) -> None:
    plan = build_plan(compose_settings(*FINETUNE_L1, "schedule=scratch_b", "pretrain.weights=torchvision"))
    assert [s.name for s in plan.stages] == ["retrain"] and plan.pretrained_weights is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["dataset=cifar10", "model=resnet56"],
            "model 'resnet56' has no torchvision counterpart with the same architecture; the models that have one are "
            "resnet34 (resnet34), resnet50 (resnet50), vgg11_bn (vgg11_bn), vgg16_bn (vgg16_bn), vgg16_imagenet "
            "(vgg16).",
        ),
        (
            ["dataset=imagenet", "model=vgg11_bn"],
            "with the defaults of conf/model/vgg11_bn.yaml and model.classifier=torchvision, but this cell has "
            "model.classifier=slimming.",
        ),
        (
            ["dataset=imagenet", "model=resnet50", "model.downsample_bias=true", "model.width_multiplier=0.5"],
            "but this cell has model.width_multiplier=0.5, model.downsample_bias=True.",
        ),
        (
            ["dataset=synthetic", "dataset.image_size=224", "model=resnet34"],
            "but this cell has 10 classes (dataset=synthetic).",
        ),
        (
            ["dataset=imagenet", "model=resnet50", "pruner=sss", "schedule=finetune"],
            "but this cell has pruner=sss, which changes the large model.",
        ),
    ],
)
def test_torchvision_weights_must_fit_the_large_model(hub: Path, overrides: list[str], message: str) -> None:
    hub.mkdir(parents=True)
    for builder in TWINS.values():
        (hub / _hub_file(builder)).write_bytes(b"stand-in")
    with pytest.raises(UserError) as error:
        build_plan(compose_settings(*overrides, "pretrain.weights=torchvision"))
    assert message in str(error.value) and str(error.value).startswith("pretrain.weights=torchvision: ")


def test_imported_torchvision_file_is_keyed_by_its_content(hub: Path, tmp_path: Path) -> None:
    """The pretrain stage imports the hub file (an old-style one, without counters), evaluates it and stores it under
    a key of the file's sha256; the record names the file."""
    torch.manual_seed(0)
    reference = _trained_like(torchvision.models.resnet34(weights=None))
    hub.mkdir(parents=True)
    path = hub / _hub_file("resnet34")
    torch.save({k: t for k, t in reference.state_dict().items() if not k.endswith(COUNTER)}, path)
    settings = compose_settings(
        "dataset=synthetic",
        "dataset.image_size=224",
        "dataset.num_classes=1000",
        "dataset.num_train=8",
        "dataset.num_test=8",
        "dataset.test_batch_size=8",
        "model=resnet34",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "pretrain.weights=torchvision",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    result = run_cell(settings, tmp_path / "run")

    [stage] = result["stages"]
    digest = sha256_file(path)
    assert stage["status"] == "imported" and stage["key"] == keys.pretrain_key(build_plan(settings), digest)
    assert stage["imported_from"] == {"file": str(path), "sha256": digest}
    assert json.loads((Path(stage["path"]) / "metrics.json").read_text())["imported_from"] == str(path)
    stored = torch.load(Path(stage["path"]) / "weights.pt", weights_only=True)
    assert all(torch.equal(stored[k], t) for k, t in reference.state_dict().items() if not k.endswith(COUNTER))
