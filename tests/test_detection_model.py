"""The detector over our ResNets: FPN and C4 heads on full and pruned specs, backbone loading, L1 pruning inside a
detector computing what the masked detector computes, the refusal of non-ResNet backbones, and the module's steps
and LR schedule."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from rethink.arch import build, default_spec
from rethink.arch.surgery import group_widths, prunable_groups
from rethink.detection.model import backbone_state, build_detector, load_backbone
from rethink.detection.module import DetectionModule, DetectionRecipe, make_scheduler
from rethink.detection.surgery import backbone_classifier, mask_detector, prune_detector
from rethink.errors import UserError
from rethink.pruning import PruneContext, create
from rethink.pruning.l1 import FilterTargetSettings
from rethink.pruning.targets import l1_target_spec

SPEC = default_spec("resnet34", 1000, width_multiplier=0.125)  # stage widths 8, 16, 32, 64
SIZE = {"min_size": 64, "max_size": 96}


def _images(n: int = 2, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 64, 80 + 8 * i, generator=g) for i in range(n)]


def _targets(n: int = 2) -> list[dict[str, Tensor]]:
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 60.0, 30.0]])
    return [{"boxes": boxes, "labels": torch.tensor([1, 2]), "difficult": torch.tensor([False, True])}] * n


@pytest.mark.parametrize("head", ["fpn", "c4"])
@pytest.mark.parametrize("variant", [None, "B"])
def test_detector_trains_and_detects(head: str, variant: str | None) -> None:
    spec = SPEC if variant is None else l1_target_spec(SPEC, "resnet34", variant)
    torch.manual_seed(0)
    detector = build_detector(spec, 3, head, **SIZE).train()
    losses = detector(_images(), [{k: t[k] for k in ("boxes", "labels")} for t in _targets()])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert detector.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    detections = detector.eval()(_images())
    assert len(detections) == 2 and set(detections[0]) == {"boxes", "labels", "scores"}
    assert all(d["labels"].min() >= 1 for d in detections if len(d["labels"]))


def test_backbone_names_frozen_bn_and_trainable_layers() -> None:
    fpn = build_detector(SPEC, 3, "fpn", **SIZE)
    names = dict(fpn.named_parameters())
    assert "backbone.body.layer1.0.conv1.weight" in names and "backbone.fpn.inner_blocks.0.0.weight" in names
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fpn.modules())
    assert isinstance(fpn.backbone.body.layer2[0].bn1, FrozenBatchNorm2d)
    trainable = {n.split(".")[2] for n, p in names.items() if n.startswith("backbone.body.") and p.requires_grad}
    assert trainable == {"layer2", "layer3", "layer4"}
    c4 = build_detector(SPEC, 3, "c4", trainable_layers=1, **SIZE)
    assert "roi_heads.box_head.layer4.0.conv1.weight" in dict(c4.named_parameters())
    assert not hasattr(c4.backbone.body, "layer4")
    frozen = [n for n, p in c4.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.body.") for n in frozen)
    assert c4.roi_heads.box_head.layer4[0].conv1.weight.requires_grad


def test_non_imagenet_resnet_is_refused() -> None:
    with pytest.raises(
        UserError,
        match=r"must be an ImageNet ResNet \(family 'resnet_imagenet'\).*'cifar_vgg'.*"
        r"model=resnet34",
    ):
        build_detector(default_spec("vgg16", 10), 3)
    with pytest.raises(UserError, match="detection head 'c5' is not known; accepted: fpn, c4"):
        build_detector(SPEC, 3, "c5")
    with pytest.raises(UserError, match=r"trainable_layers=6 must be an integer in \[0, 5\]"):
        build_detector(SPEC, 3, trainable_layers=6)


def _trained_classifier(seed: int = 1) -> nn.Module:
    """A classification model of SPEC with random weights and BN statistics (as if trained)."""
    torch.manual_seed(seed)
    model = build(SPEC)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("head", ["fpn", "c4"])
def test_load_backbone_fills_every_weight(head: str) -> None:
    detector = build_detector(SPEC, 3, head, **SIZE)
    trained = _trained_classifier().state_dict()
    load_backbone(detector, trained)
    state = backbone_state(detector)
    assert set(state) == {k for k in trained if not k.startswith("fc.") and "num_batches" not in k}
    assert all(torch.equal(state[k], trained[k]) for k in state)
    where = "roi_heads.box_head" if head == "c4" else "backbone.body"
    assert torch.equal(detector.get_submodule(f"{where}.layer4.1.bn2").running_var, trained["layer4.1.bn2.running_var"])
    with pytest.raises(ValueError, match=r"missing \['layer1.0.conv1.weight'\]"):
        load_backbone(detector, {k: v for k, v in trained.items() if k != "layer1.0.conv1.weight"})
    pruned = build(l1_target_spec(SPEC, "resnet34", "A")).state_dict()
    with pytest.raises(ValueError, match=r"shapes differ \(layer1.1.conv1.weight \(5, 8, 3, 3\) vs \(8, 8, 3, 3\)"):
        load_backbone(detector, pruned)
    with pytest.raises(ValueError, match="not a model of the given spec"):
        backbone_classifier(detector, l1_target_spec(SPEC, "resnet34", "A"))


def _heads_on_fixed_boxes(detector: nn.Module, x: Tensor) -> list[Tensor]:
    """Backbone feature maps, RPN objectness and deltas, and RoI head outputs on fixed proposals (deterministic)."""
    features = detector.backbone(x)
    maps = list(features.values())
    objectness, deltas = detector.rpn.head(maps)
    proposals = [torch.tensor([[2.0, 3.0, 40.0, 44.0], [20.0, 8.0, 60.0, 60.0], [0.0, 0.0, 63.0, 63.0]])] * len(x)
    pooled = detector.roi_heads.box_roi_pool(features, proposals, [tuple(x.shape[-2:])] * len(x))
    logits, box_deltas = detector.roi_heads.box_predictor(detector.roi_heads.box_head(pooled))
    return [*maps, *objectness, *deltas, logits, box_deltas]


@pytest.mark.parametrize("head", ["fpn", "c4"])
@pytest.mark.parametrize("variant", ["A", "B"])
def test_l1_pruning_inside_the_detector_equals_masking(head: str, variant: str) -> None:
    torch.manual_seed(0)
    detector = build_detector(SPEC, 3, head, **SIZE)
    load_backbone(detector, _trained_classifier().state_dict())
    detector.eval()
    pruner = create(FilterTargetSettings(variant=variant), "resnet34")
    target = pruner.target(SPEC)
    decision = pruner.decide(PruneContext(backbone_classifier(detector, SPEC), SPEC, "resnet34", 0, target))

    pruned_spec, pruned = prune_detector(detector, SPEC, decision.keep)
    assert pruned_spec == decision.spec == target
    widths = {
        g.name: backbone_classifier(pruned, pruned_spec).get_submodule(g.producer).out_channels
        for g in prunable_groups(SPEC)
    }
    assert widths == group_widths(target) != group_widths(SPEC)
    outside = {
        k: v
        for k, v in detector.state_dict().items()
        if not k.startswith(("backbone.body.", "roi_heads.box_head.layer4"))
    }
    assert all(torch.equal(pruned.state_dict()[k], v) for k, v in outside.items())
    assert [n for n, p in pruned.named_parameters() if p.requires_grad] == [
        n for n, p in detector.named_parameters() if p.requires_grad
    ]

    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = _heads_on_fixed_boxes(detector, x)
        masked = _heads_on_fixed_boxes(mask_detector(detector, SPEC, decision.keep), x)
        small = _heads_on_fixed_boxes(pruned, x)
    for a, b in zip(small, masked):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    assert not torch.allclose(full[0], masked[0], rtol=1e-3)  # the pruned channels did matter
    losses = pruned.train()(_images(), [{k: t[k] for k in ("boxes", "labels")} for t in _targets()])
    assert all(torch.isfinite(v) for v in losses.values())  # the pruned detector fine-tunes


RECIPE = DetectionRecipe(
    epochs=3,
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
    warmup_iters=4,
    warmup_factor=0.25,
    milestones=(1, 2),
    lr_gamma=0.1,
)


def test_lr_schedule_warms_up_then_drops_at_milestones() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=RECIPE.lr)
    scheduler = make_scheduler(optimizer, RECIPE, steps_per_epoch=5)
    lrs = []
    for _ in range(15):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # steps 0-3: 0.25 -> 1 linearly (0.25, 0.4375, 0.625, 0.8125); epoch 1 (steps 5-9) x0.1; epoch 2 x0.01
    expected = [0.02 * f for f in (0.25, 0.4375, 0.625, 0.8125, 1.0)] + [0.002] * 5 + [0.0002] * 5
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_module_trains_two_steps_and_evaluates(tmp_path) -> None:
    torch.manual_seed(0)
    module = DetectionModule(SPEC, 3, "fpn", RECIPE, **SIZE)
    batch = (_images(), _targets())
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    before = module.detector.backbone.body.layer4[0].conv1.weight.detach().clone()
    trainer = pl.Trainer(
        max_epochs=RECIPE.epochs,
        max_steps=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(module, loader, loader)
    assert trainer.global_step == 2
    assert not torch.equal(module.detector.backbone.body.layer4[0].conv1.weight, before)
    assert {"map", "map_50", "voc07_map_50", "voc_area_map_50"} <= set(module.last)
    assert "train/loss_objectness" in trainer.callback_metrics and "val/voc07_map_50" in trainer.callback_metrics
    # one batch per epoch: the next step (2) is halfway through the warm-up and in epoch 2, after both milestones
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.02 * 0.625 * 0.01, rel=1e-12)
