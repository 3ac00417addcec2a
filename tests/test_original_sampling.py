"""ThiNet and regression pruning sampled and rebuilt as their authors ran them (docs/protocol.md#thinet, #regression):
class-stratified calibration images, positions per image, ThiNet's fine-tune between layers, regression's refitted
bias and the multi-branch target."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import compose_settings
from test_reconstruction import _planted_vgg11

from rethink.arch import build, default_spec
from rethink.arch.surgery import with_group_widths
from rethink.data.calibration import calibration_indices
from rethink.errors import UserError
from rethink.pipeline.dry_run import PlannedCell, procedures
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pipeline.tasks import cell_plan
from rethink.pruning import PruneContext, create
from rethink.pruning.l1 import ratio_target
from rethink.pruning.regression import RegressionSettings
from rethink.pruning.sampling import Samples
from rethink.pruning.thinet import ThiNetSettings


def test_calibration_images_per_class_are_the_first_of_each_class_in_the_seeded_order() -> None:
    labels = torch.arange(10).repeat(20)[torch.randperm(200, generator=torch.Generator().manual_seed(3))]
    chosen = calibration_indices(labels, seed=5, batches=99, batch_size=8, images_per_class=4)
    flat = torch.cat(chosen)
    assert [len(b) for b in chosen] == [8, 8, 8, 8, 8]
    assert labels[flat].bincount().tolist() == [4] * 10
    order = torch.randperm(200, generator=torch.Generator().manual_seed(5))
    expected = [int(i) for i in order if (labels[order[: int((order == i).nonzero())]] == labels[i]).sum() < 4]
    assert flat.tolist() == expected  # in the seeded order, the first four of every class
    plain = calibration_indices(labels, seed=5, batches=2, batch_size=8)
    assert torch.cat(plain).tolist() == order[:16].tolist()  # unset: the first batches of that order, as before
    with pytest.raises(UserError, match=re.escape("calibration.images_per_class=21: class 0 has only 20 training")):
        calibration_indices(labels, seed=5, batches=1, batch_size=8, images_per_class=21)


def test_thinet_on_a_planted_layer_takes_positions_per_image_and_records_them() -> None:
    model, spec = _planted_vgg11()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(20, 3, 32, 32, generator=generator), torch.arange(10).repeat(2)) for _ in range(2)]
    target = with_group_widths(spec, {"features.0": 14})
    pruner = create(ThiNetSettings(ratio=0.5, samples=400, positions_per_image=10), "vgg11")
    decision = pruner.decide(PruneContext(copy.deepcopy(model), spec, "vgg11", 1, target, batches=batches))
    assert sorted(set(range(16)) - set(decision.keep["features.0"])) == [5, 7]  # the planted channels still go
    notes = decision.notes
    assert (notes["samples"], notes["positions_per_image"], notes["calibration_images"]) == (400, 10, 40)
    assert notes["calibration_images_per_class"] == {str(c): 4 for c in range(10)}
    assert notes["layers"]["features.0"]["samples"] == 400
    too_many = create(ThiNetSettings(ratio=0.5, samples=401, positions_per_image=10), "vgg11")
    with pytest.raises(UserError, match=re.escape("40 images x 10 positions of layer 'features.4' per image = 400")):
        too_many.decide(PruneContext(copy.deepcopy(model), spec, "vgg11", 1, target, batches=batches))


def test_thinet_on_cifar10_reads_k_images_of_every_class(tmp_path: Path, cifar10_npz: Path) -> None:
    settings = compose_settings(
        "dataset=cifar10", f"dataset.npz_path={cifar10_npz}", "dataset.train_subset=600", "dataset.test_subset=100",
        "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=1", "pruner=thinet",
        "pruner.ratio=0.5", "pruner.samples=400", "pruner.positions_per_image=10", "calibration.images_per_class=10",
        "schedule=finetune", "schedule.epochs=1", "trainer.limit_train_batches=1",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )  # fmt: skip
    run_cell(settings, tmp_path / "run")
    [decision] = (tmp_path / "artifacts").glob("prune/*/decision.json")
    notes = json.loads(decision.read_text())
    assert notes["calibration_images_per_class"] == {str(c): 10 for c in range(10)}
    assert (notes["calibration_images"], notes["samples"], notes["positions_per_image"]) == (100, 400, 10)
    samples = {group: layer["samples"] for group, layer in notes["layers"].items()}
    assert list(samples.values()) == [400] * 7 + [100, 100], samples  # conv readers (the last 2x2: 4 per image)
    # the last conv's and the hidden layer's readers are Linear: one sample per image


def test_too_few_images_for_the_positions_are_refused_before_training() -> None:
    with pytest.raises(UserError, match=re.escape("30 images x 4 positions of layer 'features.34' per image = 120")):
        build_plan(
            compose_settings(
                "dataset=synthetic", "model=vgg16", "pruner=thinet", "pruner.variant=A", "pruner.samples=300",
                "pruner.positions_per_image=10", "calibration.images_per_class=3", "schedule=finetune",
            )
        )  # fmt: skip


def _stepped(network: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_thinet_finetunes_on_the_training_batches_after_each_layer_or_block() -> None:
    model, spec = _planted_vgg11()
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(10, (8,)))]
    context = PruneContext(copy.deepcopy(model), spec, "vgg11", 1, batches=batches)
    seen = []
    context.training_batches = lambda: iter(seen.append(1) or batches * 5)  # type: ignore[method-assign]
    for after, following, steps in (("layer", "a.conv2", 3), ("block", "a.conv2", 0), ("block", "b.conv1", 3)):
        settings = ThiNetSettings(ratio=0.5, finetune_epochs=2, finetune_steps=3, finetune_after=after)
        finetune = create(settings, "vgg11").after_layer(context)
        network, seen[:] = copy.deepcopy(model), []
        before = copy.deepcopy(network.state_dict())
        finetune(network, "a.conv1", following)
        assert _stepped(network, before) == bool(steps) and len(seen) == (1 if steps else 0)  # 3 steps of 5 batches
    assert create(ThiNetSettings(ratio=0.5), "vgg11").after_layer(context) is None  # finetune_epochs=0: none


def test_regression_refits_the_bias_as_the_least_squares_intercept() -> None:
    generator = torch.Generator().manual_seed(0)
    patches = torch.randn(500, 4, 3, generator=generator, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, generator=generator, dtype=torch.float64)
    weight[:, 3] *= 1e-3  # channel 3 explains little
    bias, offset = torch.full((6,), 0.5, dtype=torch.float64), torch.linspace(-1, 1, 6, dtype=torch.float64)
    original = torch.einsum("sct,oct->so", patches, weight) + offset  # the original output, its bias included
    samples = Samples(patches, weight, original - bias, bias)
    rebuilt = create(RegressionSettings(ratio=0.5), "vgg11").select(samples, 3, generator)
    assert rebuilt.kept == [0, 1, 2]
    design = torch.cat([patches[:, rebuilt.kept].reshape(500, 9), torch.ones(500, 1, dtype=torch.float64)], 1)
    intercept = torch.linalg.lstsq(design, original).solution[-1]
    assert torch.allclose(rebuilt.bias, intercept, atol=1e-12) and rebuilt.notes["bias_refit"]
    assert torch.allclose(rebuilt.bias, offset, atol=0.01)  # close to the planted offset, not the old 0.5
    no_bias = create(RegressionSettings(ratio=0.5), "vgg11").select(Samples(patches, weight, original), 3, generator)
    assert no_bias.bias is None and not no_bias.notes["bias_refit"]  # a reader without bias (BN follows) keeps none


def test_the_multi_branch_target_lowers_the_block_output_error() -> None:
    torch.manual_seed(0)
    spec = default_spec("resnet56", 10, width_multiplier=0.25)
    model = build(spec).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2), module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.2, 0.2)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 3, 32, 32, generator=generator), torch.randint(10, (32,))) for _ in range(2)]
    held_out = torch.randn(64, 3, 32, 32, generator=generator)
    target, ends = ratio_target(spec, 0.8), ["layer1.8", "layer2.8", "layer3.8"]

    def outputs(network: torch.nn.Module) -> list[torch.Tensor]:
        captured = [network.get_submodule(end).register_forward_hook(lambda m, i, o: out.append(o)) for end in ends]
        out: list[torch.Tensor] = []
        with torch.no_grad():
            network(held_out)
        for hook in captured:
            hook.remove()
        return out

    errors = {}
    for multi_branch in (False, True):
        pruner = create(RegressionSettings(ratio=0.8, samples=1000, multi_branch=multi_branch), "resnet56")
        decision = pruner.decide(PruneContext(copy.deepcopy(model), spec, "resnet56", 1, target, batches=batches))
        assert all(layer["multi_branch"] == multi_branch for layer in decision.notes["layers"].values())
        pruned = build(decision.spec).eval()
        pruned.load_state_dict(decision.state)
        errors[multi_branch] = [float((a - b).norm() / a.norm()) for a, b in zip(outputs(model), outputs(pruned))]
    # measured: 0.632 -> 0.615, 0.246 -> 0.236, 0.157 -> 0.148 at the ends of the three stages (2.7-6 % lower)
    assert all(on < 0.985 * off for on, off in zip(errors[True], errors[False])), errors


@pytest.mark.parametrize(
    "data, model, message",
    [
        ("synthetic", "vgg16", "pruner.multi_branch=true needs residual blocks: family 'cifar_vgg' declares no"),
        # pre-activation blocks end in a conv, not in the BN the shortcut's error is mapped through: refused at plan
        ("synthetic", "preresnet164", "block 'layer1.0' of family 'cifar_preresnet' ends its branch in 'conv3'"),
    ],
)
def test_multi_branch_needs_post_activation_residual_blocks(data: str, model: str, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        build_plan(
            compose_settings(
                f"dataset={data}", f"model={model}", "pruner=regression", "pruner.ratio=0.5",
                "pruner.multi_branch=true", "schedule=finetune", "dry_run=true",
            )
        )  # fmt: skip


def test_the_paper_configs_sample_as_the_originals_and_the_dry_run_says_so() -> None:
    cells = [
        ("thinet_imagenet", "thinet_vgg_conv", ()),
        ("thinet_imagenet", "thinet_resnet50_30", ("+experiment/paper/variant=thinet_original",)),
        ("regression_imagenet", "regression_resnet50_2x", ()),
    ]
    planned = []
    for table, row, extra in cells:
        settings = compose_settings(f"experiment=paper/{table}", f"+experiment/paper/row={row}", *extra,
                                    "schedule=finetune", "seed=1", "dry_run=true")  # fmt: skip
        planned.append(PlannedCell(len(planned), [], cell_plan(settings)))
    assert procedures(planned) == [
        "thinet: 100,000 samples per layer, 10 positions per image; no fine-tune between layers; calibration: 10 "
        "images of every class (10,000)",
        "thinet: 100,000 samples per layer, 10 positions per image; fine-tuned after each block at 0.0001, 2 passes "
        "(at most 5,005 steps); calibration: 10 images of every class (10,000)",
        "regression: 50,000 samples per layer, 10 positions per image; LASSO on 20,000 rows; multi-branch target on; "
        "calibration: 5 images of every class (5,000)",
    ]
    requested = planned[2].plan.to_dict()["pruning"]["requested"]
    assert (requested["samples"], requested["positions_per_image"], requested["multi_branch"]) == (50000, 10, True)


def test_pruners_that_now_decide_differently_carry_a_revision_in_their_keys() -> None:
    from rethink.pruning.guided_sparsity import GuidedSparsitySettings
    from rethink.pruning.uniform_sparsity import UniformSparsitySettings

    for settings in (RegressionSettings(ratio=0.5), GuidedSparsitySettings(), UniformSparsitySettings()):
        assert settings.key_values()["revision"] == 1  # stored decisions made the old way are not reused
        assert "revision" not in create(settings, "vgg16").requested()
    assert "revision" not in ThiNetSettings(ratio=0.5).key_values()  # its decisions at the defaults are unchanged
