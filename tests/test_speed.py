"""The faster training paths (``speed.*``, bf16 autocast) against eager fp32: outputs within stated tolerances for a
forward pass and one training step, and a compiled model that prunes, stores and reloads under its own names."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_settings

from rethink.arch import ArchSpec, build, default_spec
from rethink.arch.registry import family_of
from rethink.errors import UserError
from rethink.pipeline.result import run_cell
from rethink.settings.schema import SpeedSettings
from rethink.training.module import ClassificationModule
from rethink.training.recipes import Recipe
from rethink.training.speed import as_input, to_memory_format, uses_channels_last

# Float rounding only: channels_last and compile run the same fp32 arithmetic in another order (in float64 the
# channels_last step equals the contiguous one to 4e-15). Logits agree to FP32_RTOL / FP32_ATOL; one SGD step moves
# all parameters, as one vector, to within FP32_UPDATE of eager fp32's update, in norm. The CPU's channels_last
# BatchNorm collects its statistics less accurately (50x the contiguous kernel's error on inputs whose mean is 30
# stds from 0), and ResNet-56's depth amplifies that at initialisation: measured 1.1e-2 there at half width on one
# thread, 8e-6 for VGG-16, 3e-5 for DenseNet-40. bf16 autocast keeps 8 mantissa bits: logits within BF16_LOGITS of
# their largest magnitude and an update pointing the same way (cosine >= BF16_COSINE; its size differs by 4-50 % of
# the update), which is why it is not a default.
FP32_RTOL, FP32_ATOL, FP32_UPDATE = 1e-4, 1e-5, 0.05
BF16_LOGITS, BF16_COSINE = 0.05, 0.8

RECIPE = Recipe(1, 0.1, [], 0.1, 0.9, 1e-4, nesterov=False)


def _parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten() for p in model.parameters()])


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool, bf16: bool = False):
    """Logits of a forward pass, and the update of all parameters by one SGD step on its loss."""
    start = _parameters(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(as_input(x, channels_last))
        loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return logits.float().detach(), _parameters(model) - start


def _same_update(fast: torch.Tensor, eager: torch.Tensor, tolerance: float) -> None:
    assert (fast - eager).norm() <= tolerance * eager.norm(), ((fast - eager).norm() / eager.norm()).item()


def _pair(name: str, **options):
    torch.manual_seed(0)
    model = build(default_spec(name, 10, **options)).train()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    return model, copy.deepcopy(model), x, y


@pytest.mark.parametrize(
    "name,options", [("resnet56", {"width_multiplier": 0.5}), ("vgg16", {"width_multiplier": 0.25}), ("densenet40", {})]
)
def test_channels_last_equals_eager_fp32_forward_and_step(name: str, options: dict) -> None:
    eager, fast, x, y = _pair(name, **options)
    logits, update = _step(eager, x, y, channels_last=False)
    fast_logits, fast_update = _step(to_memory_format(fast, True), x, y, channels_last=True)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in fast.parameters() if p.dim() == 4)
    torch.testing.assert_close(fast_logits, logits, rtol=FP32_RTOL, atol=FP32_ATOL)
    _same_update(fast_update, update, FP32_UPDATE)


def test_bf16_autocast_is_within_its_stated_tolerance() -> None:
    eager, fast, x, y = _pair("resnet56", width_multiplier=0.5)
    logits, update = _step(eager, x, y, channels_last=False)
    fast_logits, fast_update = _step(fast, x, y, channels_last=False, bf16=True)
    assert (fast_logits - logits).abs().max() <= BF16_LOGITS * logits.abs().max()
    assert F.cosine_similarity(fast_update, update, dim=0) >= BF16_COSINE


def test_compiled_model_equals_eager_fp32_forward_and_step() -> None:
    eager, fast, x, y = _pair("vgg11", width_multiplier=0.125)
    logits, update = _step(eager, x, y, channels_last=False)
    fast.compile()
    fast_logits, fast_update = _step(fast, x, y, channels_last=False)
    torch.testing.assert_close(fast_logits, logits, rtol=FP32_RTOL, atol=FP32_ATOL)
    _same_update(fast_update, update, FP32_UPDATE)
    assert not any("_orig_mod" in key for key in fast.state_dict())


def test_auto_follows_the_family_and_the_module_applies_it_to_installed_networks() -> None:
    spec = default_spec("resnet56", 10, width_multiplier=0.25)
    assert uses_channels_last(SpeedSettings(), spec) is family_of(spec).channels_last
    assert uses_channels_last(SpeedSettings(channels_last=False), spec) is False
    densenet = default_spec("densenet40", 10)  # a family measured slower in channels_last
    assert not uses_channels_last(SpeedSettings(), densenet) and uses_channels_last(SpeedSettings(True), densenet)
    module = ClassificationModule(spec, RECIPE, speed=SpeedSettings(channels_last=True))
    module.setup("validate")
    assert module.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # type: ignore[union-attr]
    smaller = default_spec("resnet56", 10, width_multiplier=0.125)
    module.install(smaller, build(smaller).state_dict())  # e.g. the pruning callback replacing the network
    assert module.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # type: ignore[union-attr]
    assert not module.compiled


def test_a_bad_speed_setting_is_refused() -> None:
    with pytest.raises(UserError, match="speed.channels_last"):
        compose_settings("speed.channels_last=sometimes")


def test_a_compiled_module_keeps_the_model_s_own_names() -> None:
    spec = default_spec("resnet56", 10, width_multiplier=0.25)
    plain = ClassificationModule(spec, RECIPE)
    compiled = ClassificationModule(spec, RECIPE, speed=SpeedSettings(compile=True))
    compiled.setup("fit")  # compiles lazily, at the first call
    assert compiled.compiled and compiled.model.state_dict().keys() == plain.model.state_dict().keys()
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # Lightning's checkpoints too


@pytest.mark.slow  # compiles three networks (about 2 minutes on 2 CPU cores with a cold compile cache)
def test_compiled_channels_last_cell_prunes_stores_and_reloads(tmp_path: Path) -> None:
    cell = (
        "dataset=synthetic",
        "model=vgg16",
        "model.width_multiplier=0.125",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "pretrain.epochs=1",
        "pruner=l1",
        "pruner.variant=A",
        "schedule=finetune",
        "schedule.epochs=1",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    fast = run_cell(compose_settings(*cell, "speed.compile=true", "speed.channels_last=true"), tmp_path / "fast")
    assert fast["speed"] == {
        "channels_last": True,
        "channels_last_requested": True,
        "compile": True,
        "precision": "32-true",
    }
    for record in fast["stages"]:  # every stored state has the model's own names and loads into a fresh build
        spec_path = Path(record["path"]) / "spec.json"
        state = torch.load(Path(record["path"]) / "weights.pt", map_location="cpu", weights_only=True)
        assert not any("_orig_mod" in key for key in state), record["stage"]
        assert all(t.is_contiguous() for t in state.values())
        if spec_path.is_file():
            build(ArchSpec.from_json(spec_path.read_text())).load_state_dict(state, strict=True)
    again = run_cell(compose_settings(*cell), tmp_path / "eager")  # the speed settings are not in the keys
    assert [s["status"] for s in again["stages"]] == ["reused", "reused", "reused"]
    assert again["accuracy"] == fast["accuracy"] and again["speed"]["compile"] is False
