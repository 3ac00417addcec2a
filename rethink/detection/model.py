"""Faster R-CNN with one of our ImageNet ResNets (full or pruned, any ``resnet_imagenet`` spec) as its backbone.

Two heads: ``fpn`` (torchvision's FPN over layer1..layer4, its default anchors, RoI pooler and two-MLP box head) and
``c4``, the original Faster R-CNN setting of the paper (Detectron's R50-C4): conv1..layer3 as the stride-16 backbone,
RoIAlign 14x14, then layer4 and global pooling as the box head. The backbone's BatchNorm is frozen
(``FrozenBatchNorm2d``, as torchvision's detection references) and its first layers too, per ``trainable_layers``.
Our resnet's module names stay inside the detector (``backbone.body.layer1.0.conv1``; with ``c4``, layer4 lives at
``roi_heads.box_head.layer4``), so classification weights map onto it by name (:func:`load_backbone`).
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from rethink.arch import ArchSpec, build
from rethink.errors import UserError

Head = Literal["fpn", "c4"]
HEADS = ("fpn", "c4")
FPN_WIDTH = 256
C4_ANCHOR_SIZES = (32, 64, 128, 256, 512)  # Detectron's R50-C4 RPN: one stride-16 map, 5 sizes x 3 ratios
# trainable_layers=k trains the first k of these (torchvision's rule), the rest of the backbone stays fixed.
TRAINABLE_ORDER = ("layer4", "layer3", "layer2", "layer1", "conv1")
RESNET_FAMILY = "resnet_imagenet"


class C4Backbone(nn.Module):
    """conv1..layer3 of a resnet (``body``), one stride-16 feature map of ``out_channels`` channels."""

    def __init__(self, resnet: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(resnet, return_layers={"layer3": "0"})
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.body(x)


class C4BoxHead(nn.Module):
    """The box head of R50-C4: a resnet's ``layer4`` on the 14x14 RoI features, then global average pooling."""

    def __init__(self, layer4: nn.Module) -> None:
        super().__init__()
        self.layer4 = layer4
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(self.layer4(x)), 1)


def build_detector(
    spec: ArchSpec,
    num_classes: int,
    head: Head = "fpn",
    min_size: int = 600,
    max_size: int = 1000,
    trainable_layers: int = 3,
) -> FasterRCNN:
    """A freshly initialised Faster R-CNN over the resnet of ``spec`` (its ``fc`` is dropped).

    ``num_classes`` counts the object classes; the detector adds the background class 0. ``min_size`` / ``max_size``:
    the image resize of torchvision's transform (600 / 1000, the paper's Faster R-CNN setting). ``trainable_layers``:
    how many of layer4, layer3, layer2, layer1, conv1 train (3: layer2..layer4, Detectron's default).
    """
    _check(spec, num_classes, head, trainable_layers)
    resnet = build(spec)
    freeze_batchnorm(resnet)
    trained = TRAINABLE_ORDER[:trainable_layers]  # BN is frozen: no parameters of its own
    for name, param in resnet.named_parameters():
        param.requires_grad_(name.split(".")[0] in trained)
    widths = spec.config["stage_out_widths"]
    if head == "fpn":
        layers = {f"layer{i}": str(i - 1) for i in range(1, 5)}
        backbone = BackboneWithFPN(resnet, layers, list(widths), FPN_WIDTH)
        return FasterRCNN(backbone, num_classes + 1, min_size=min_size, max_size=max_size)
    return FasterRCNN(
        C4Backbone(resnet, widths[2]),
        None,  # the box predictor below fixes the classes
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=AnchorGenerator((C4_ANCHOR_SIZES,), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=14, sampling_ratio=0),
        box_head=C4BoxHead(resnet.layer4),
        box_predictor=FastRCNNPredictor(widths[3], num_classes + 1),
    )


def _check(spec: ArchSpec, num_classes: int, head: str, trainable_layers: int) -> None:
    if spec.family != RESNET_FAMILY:
        raise UserError(
            f"the detection backbone must be an ImageNet ResNet (family '{RESNET_FAMILY}'), but the model's family "
            f"is '{spec.family}'; choose one, e.g. model=resnet34."
        )
    if len(spec.config["stage_out_widths"]) != 4:
        raise UserError(f"the detection backbone needs a resnet of 4 stages, got {spec.config['stage_out_widths']}.")
    if head not in HEADS:
        raise UserError(f"detection head {head!r} is not known; accepted: {', '.join(HEADS)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"the detector needs num_classes >= 1 object classes, got {num_classes!r}.")
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
        raise UserError(f"trainable_layers={trainable_layers!r} must be an integer in [0, {len(TRAINABLE_ORDER)}].")


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d`` with its statistics and affine."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen.to(child.weight.device))
        else:
            freeze_batchnorm(child)


def backbone_parts(detector: FasterRCNN) -> dict[str, tuple[nn.Module, str]]:
    """Each top-level module of the resnet inside ``detector`` (conv1, bn1, ..., layer4): (its parent, its name)."""
    body = detector.backbone.body
    parts = {name: (body, name) for name, _ in body.named_children()}
    box_head = detector.roi_heads.box_head
    if isinstance(box_head, C4BoxHead):
        parts["layer4"] = (box_head, "layer4")
    return parts


def backbone_state(detector: FasterRCNN) -> dict[str, Tensor]:
    """The backbone's weights under the classification model's names (``layer1.0.conv1.weight``, ...)."""
    state = {}
    for name, (parent, attr) in backbone_parts(detector).items():
        state.update({f"{name}.{key}": value for key, value in getattr(parent, attr).state_dict().items()})
    return state


def load_backbone(detector: FasterRCNN, classification_state: Mapping[str, Tensor]) -> None:
    """Copy a classification model's weights (its spec's state dict) into ``detector``'s backbone, strictly.

    ``fc.*`` is ignored and ``num_batches_tracked`` dropped (frozen BN has none); every backbone entry must be given
    with its shape, else ValueError naming the keys.
    """
    given = {
        key: value
        for key, value in classification_state.items()
        if not key.startswith("fc.") and not key.endswith("num_batches_tracked")
    }
    expected = backbone_state(detector)
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or unexpected:
        raise ValueError(f"the weights do not fit the detector's backbone: missing {missing}, unexpected {unexpected}")
    wrong = [key for key, value in given.items() if value.shape != expected[key].shape]
    if wrong:
        shapes = ", ".join(f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:5])
        raise ValueError(f"the weights do not fit the detector's backbone: shapes differ ({shapes})")
    for name, (parent, attr) in backbone_parts(detector).items():
        part = {key[len(name) + 1 :]: value for key, value in given.items() if key.startswith(f"{name}.")}
        getattr(parent, attr).load_state_dict(part, strict=True)
