"""The selection criteria compared on one trained model, the real CIFAR-10: at the same target widths, ThiNet and
regression pruning reconstruct the next layer better than L1-norm and random selection on held-out images, and their
pruned models are more accurate before any fine-tuning than random selection's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import compose_settings

from rethink.arch import ArchSpec, build
from rethink.arch.surgery import group_slots, group_widths, with_group_widths
from rethink.data import build_datamodule
from rethink.data.augment import normalize
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning import PruneContext, create
from rethink.pruning.l1 import FilterTargetSettings
from rethink.pruning.random import RandomSettings
from rethink.pruning.regression import RegressionSettings
from rethink.pruning.thinet import ThiNetSettings

# ~70 s (a VGG-16 trained on real CIFAR-10 images): the slow suite (make test-slow)
pytestmark = pytest.mark.slow

CRITERIA = {
    "l1": FilterTargetSettings(variant="A"),
    "random": RandomSettings(variant="A"),
    "thinet": ThiNetSettings(variant="A"),
    "regression": RegressionSettings(variant="A"),
}
LAYER = "features.34"  # VGG-16's conv 11 (of 13): a late layer, pruned alone to half its width


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cifar10_npz: Path) -> dict[str, Any]:
    """A quarter-width VGG-16 trained 4 epochs on 5,000 real CIFAR-10 images; 8 calibration batches, 8 held-out
    training batches and 2,000 test images."""
    tmp = tmp_path_factory.mktemp("selection")
    overrides = (
        "dataset=cifar10", f"dataset.npz_path={cifar10_npz}", "dataset.train_subset=5000", "dataset.test_subset=2000",
        "model=vgg16", "model.width_multiplier=0.25", "pretrain.epochs=4", "pretrain.lr=0.05", "trainer=cpu",
        "trainer.enable_progress_bar=false", f"paths.artifact_dir={tmp / 'artifacts'}",
    )  # fmt: skip
    settings = compose_settings(*overrides)
    run_cell(settings, tmp / "run")
    spec = ArchSpec.from_json((tmp / "run" / "spec.json").read_text())
    data = build_datamodule(settings.dataset, settings.seed)
    batches = data.calibration_batches(16)
    test = (normalize(data.arrays.x_test, data.mean, data.std), data.arrays.y_test)
    variant_a = build_plan(compose_settings(*overrides, "pruner=l1", "pruner.variant=A", "schedule=finetune")).pruned
    state = torch.load(tmp / "run" / "weights.pt", weights_only=True)
    return {"spec": spec, "state": state, "calibration": batches[:8], "held_out": batches[8:], "test": test,
            "variant_a": variant_a}  # fmt: skip


def _model(trained: dict[str, Any]) -> torch.nn.Module:
    model = build(trained["spec"])
    model.load_state_dict(trained["state"])
    return model.eval()


def _pruned(trained: dict[str, Any], criterion: str, target: ArchSpec) -> torch.nn.Module:
    pruner = create(CRITERIA[criterion], "vgg16")
    context = PruneContext(_model(trained), trained["spec"], "vgg16", 1, target, batches=trained["calibration"])
    decision = pruner.decide(context)
    model = build(decision.spec)
    model.load_state_dict(decision.state)
    return model.eval()


def _output_of(model: torch.nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    captured = {}
    hook = model.get_submodule(layer).register_forward_hook(lambda m, i, out: captured.setdefault("out", out))
    with torch.no_grad():
        model(images)
    hook.remove()
    return captured["out"]


def test_thinet_and_regression_reconstruct_the_next_layer_better(trained: dict[str, Any]) -> None:
    spec = trained["spec"]
    target = with_group_widths(spec, {LAYER: group_widths(spec)[LAYER] // 2})
    reader = next(s.consumers[0][0] for s in group_slots(spec) if s.group.name == LAYER)
    original = _model(trained)
    expected = [_output_of(original, reader, images) for images, _ in trained["held_out"]]
    errors = {}
    for criterion in CRITERIA:
        pruned = _pruned(trained, criterion, target)
        got = [_output_of(pruned, reader, images) for images, _ in trained["held_out"]]
        errors[criterion] = sum(float((g - e).norm()) for g, e in zip(got, expected)) / sum(
            float(e.norm()) for e in expected
        )
    print("relative next-layer error on held-out images:", {k: round(v, 4) for k, v in errors.items()})
    for criterion in ("thinet", "regression"):
        assert errors[criterion] < min(errors["l1"], errors["random"]), errors


def test_thinet_and_regression_prune_to_better_accuracy_than_random(trained: dict[str, Any]) -> None:
    images, labels = trained["test"]
    accuracy = {}
    for criterion in CRITERIA:
        model = _pruned(trained, criterion, trained["variant_a"])
        with torch.no_grad():
            accuracy[criterion] = 100 * float((model(images).argmax(1) == labels).float().mean())
    print("top-1 right after pruning to VGG-16-A widths:", {k: round(v, 2) for k, v in accuracy.items()})
    assert accuracy["thinet"] > accuracy["random"] and accuracy["regression"] > accuracy["random"], accuracy


def test_the_selection_experiment_shares_the_large_model_and_the_scratch_runs() -> None:
    from test_keys import stage_keys
    from test_paper_configs import compose_with_hydra, sweep_axes

    axes = sweep_axes(compose_with_hydra("experiment=selection_cifar10"))
    assert sorted(axes["pruner"]) == sorted(f"pruner={p}" for p in CRITERIA) and len(axes["seed"]) == 5
    assert sweep_axes(compose_with_hydra("experiment=quick/selection_cifar10"))["pruner"] == axes["pruner"]
    for row, model in (("vgg16_a", "vgg16"), ("resnet56_a", "resnet56"), ("resnet56_b", "resnet56")):
        cell = ("experiment=selection_cifar10", f"+experiment/paper/row={row}", "seed=1")
        pretrain, retrain = set(), {"scratch_e": set(), "scratch_b": set()}
        for pruner in CRITERIA:
            plan = build_plan(compose_settings(*cell, f"pruner={pruner}", "schedule=finetune"))
            cut = (plan.cell["model"], plan.cell["pruner"], plan.pruner.settings.variant)
            assert cut == (model, pruner, row[-1].upper())
            pretrain.add(stage_keys(*cell, f"pruner={pruner}", "schedule=finetune")["pretrain"])
            for schedule, found in retrain.items():
                found.add(stage_keys(*cell, f"pruner={pruner}", f"schedule={schedule}")["retrain"])
        assert len(pretrain) == 1 and all(len(found) == 1 for found in retrain.values())
