"""Channel pruning of the backbone inside a trained detector, with our generic surgery (:mod:`rethink.arch.surgery`).

A pruner decides on a classification model holding the detector's backbone weights (:func:`backbone_classifier`);
its kept channels (``Decision.keep``) then thin the detector itself: :func:`prune_detector` gives the physically
smaller detector, every weight outside the backbone (FPN, RPN, RoI heads) copied unchanged; :func:`mask_detector`
zeroes the pruned channels in a copy instead, which computes the same function (the equivalence test). Channel
groups never include a stage's output (the residual stream), so what reads the backbone keeps its shape.
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

from torch import nn
from torchvision.models.detection import FasterRCNN

from rethink.arch import ArchSpec, build
from rethink.arch.surgery import mask, shrink
from rethink.detection.model import backbone_parts, backbone_state, freeze_batchnorm, load_backbone


def backbone_classifier(detector: FasterRCNN, spec: ArchSpec) -> nn.Module:
    """A classification model of ``spec`` (eval mode, on the CPU) holding ``detector``'s backbone weights; its
    ``fc`` is freshly initialised and its BN statistics are the frozen ones."""
    model = build(spec).eval()
    state = model.state_dict()
    backbone = backbone_state(detector)
    wanted = {key for key in state if not key.startswith("fc.") and not key.endswith("num_batches_tracked")}
    if set(backbone) != wanted or any(value.shape != state[key].shape for key, value in backbone.items()):
        raise ValueError(
            "the detector's backbone is not a model of the given spec (its weights' names or shapes differ)"
        )
    state.update({key: value.detach().cpu().clone() for key, value in backbone.items()})
    model.load_state_dict(state, strict=True)
    return model


def prune_detector(
    detector: FasterRCNN, spec: ArchSpec, keep: Mapping[str, Sequence[int]]
) -> tuple[ArchSpec, FasterRCNN]:
    """The pruned spec and a new detector whose backbone keeps only the channels ``keep`` names (per channel group
    of ``spec``, the detector's backbone spec; groups not named keep all), every other weight copied unchanged.

    The new detector is on ``detector``'s device, in its train/eval mode, with the same parameters trainable.
    """
    pruned_spec, small = shrink(backbone_classifier(detector, spec), spec, keep)
    freeze_batchnorm(small)
    pruned = copy.deepcopy(detector)
    trainable = {name: param.requires_grad for name, param in detector.named_parameters()}
    reference = next(detector.parameters())
    for name, (parent, attr) in backbone_parts(pruned).items():
        setattr(parent, attr, getattr(small, name).to(reference.device, reference.dtype))
    for name, param in pruned.named_parameters():
        param.requires_grad_(trainable[name])
    return pruned_spec, pruned.train(detector.training)


def mask_detector(detector: FasterRCNN, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> FasterRCNN:
    """A copy of ``detector`` with the channels that ``keep`` prunes zeroed in its backbone (:func:`surgery.mask`)."""
    masked = mask(backbone_classifier(detector, spec), spec, keep)
    result = copy.deepcopy(detector)
    load_backbone(result, masked.state_dict())
    return result
