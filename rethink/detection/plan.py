"""The plan of a detection cell (``task=detection``): the classification cell whose final model becomes the backbone
— the cell with the transfer setting's schedule (:data:`CLASSIFICATION_SCHEDULE`), so its stages have the keys the
classification tables' cells have and are shared through the store — then the detection stages:

    detect (the detector from the backbone)                        unpruned, prune_c, scratch_e, scratch_b
    detect > detect_prune > detect_finetune (pruned in the detector)   prune_d

Everything is checked here, before any data is read: the model must be an ImageNet ResNet, and ``prune_d`` needs a
pruner that can decide on a detector's backbone (a predefined target, no pretraining penalty, no calibration data).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rethink.arch import ArchSpec, UnknownModelError, build, model_info
from rethink.arch.cost import count_cost
from rethink.detection.data import VOC_YEARS
from rethink.detection.settings import CLASSIFICATION_SCHEDULE, DetectionSettings
from rethink.detection.voc import check_voc_root
from rethink.errors import UserError
from rethink.options import option_node
from rethink.pipeline.checks import configured_pruner
from rethink.pipeline.config import load_settings
from rethink.pipeline.plan import CellPlan, build_plan
from rethink.pipeline.schedules import SCHEDULES
from rethink.pipeline.source import resolved_node
from rethink.pruning.registry import Pruner
from rethink.settings.schema import Settings

DETECT, DETECT_PRUNE, DETECT_FINETUNE = "detect", "detect_prune", "detect_finetune"
BACKBONE_FAMILY = "resnet_imagenet"


@dataclass(frozen=True)
class DetectionPart:
    """What a detection cell adds to its classification cell: the task settings, the backbone it starts from (None
    while classification training decides it), prune_d's pruner and pruned backbone, and the cell's settings."""

    settings: DetectionSettings
    cell_settings: Settings  # the detection cell's own settings (task=detection), for its config and result
    backbone: ArchSpec | None
    pruner: Pruner | None = None  # prune_d: the pruner deciding inside the detector
    pruned: ArchSpec | None = None  # prune_d: its target

    @property
    def stages(self) -> tuple[str, ...]:
        return (DETECT, DETECT_PRUNE, DETECT_FINETUNE) if self.pruner is not None else (DETECT,)

    @property
    def final_backbone(self) -> ArchSpec | None:
        return self.pruned if self.pruner is not None else self.backbone

    def backbone_cost(self, spec: ArchSpec) -> dict[str, Any]:
        """Params and FLOPs (MACs and the paper's convention) of ``spec`` without its classifier, on a square image
        of ``min_size`` (with the C4 head, layer4 runs on the RoIs instead: an estimate)."""
        with_fc = _build_meta(spec)
        with_fc.fc = nn.Identity()
        cost = count_cost(with_fc, self.settings.min_size)
        return {
            "params": cost.params,
            "flops": cost.flops_record(),
            "input": self.settings.min_size,
        }

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        backbone = None if self.backbone is None else self.backbone_cost(self.backbone)
        out: dict[str, Any] = {
            "transfer": s.transfer,
            "head": s.head,
            "data": dataclasses.asdict(s.data),
            "backbone": backbone or "decided by classification training",
            "stages": [
                {"name": DETECT, "epochs": s.epochs, "lr": s.lr, "milestones": list(s.milestones)},
                *(
                    [
                        {"name": DETECT_PRUNE},
                        {"name": DETECT_FINETUNE, "epochs": s.finetune_epochs, "lr": s.finetune_lr},
                    ]
                    if self.pruner is not None
                    else []
                ),
            ],
        }
        if self.pruned is not None:
            out["pruned_backbone"] = self.backbone_cost(self.pruned)
        return out


def _build_meta(spec: ArchSpec) -> nn.Module:
    with torch.device("meta"):
        return build(spec)


def _classification_config(settings: Settings) -> dict[str, Any]:
    """The resolved config of the classification cell behind a detection cell."""
    task = settings.task
    assert isinstance(task, DetectionSettings)
    config = copy.deepcopy(dict(settings.resolved))
    config["task"] = {"name": "classification"}
    schedule = CLASSIFICATION_SCHEDULE[task.transfer]
    if config["schedule"].get("name") != schedule:
        config["schedule"] = resolved_node(config, "schedule", option_node("schedule", schedule) or {})
    if SCHEDULES.classes[schedule].role == "unpruned":  # the unpruned backbone: no pruner
        config["pruner"] = option_node("pruner", "none")
    return config


def _prune_in_detector(settings: Settings, large: ArchSpec) -> tuple[Pruner, ArchSpec]:
    """prune_d's pruner and its target (checked as any cell's: :func:`configured_pruner`), refused when it cannot
    decide on a detector's backbone."""
    pruner, _, target, _ = configured_pruner(settings, large)
    needs = pruner.requirements()
    problem = None
    if not pruner.prunes:
        problem = "prunes nothing (pick one, e.g. pruner=l1 pruner.variant=A)"
    elif not needs.predefined_target:
        problem = "decides its architecture from classification training, which a detector's backbone lacks"
    elif needs.regularizer:
        problem = "needs its penalty during the classification pretraining, which the detector's backbone did not have"
    elif needs.calibration:
        problem = "reads classification calibration batches, which a detection cell does not provide"
    elif pruner.prunes_weights:
        problem = "zeroes weights (masks) instead of removing channels"
    if problem:
        raise UserError(
            f"task.transfer=prune_d with pruner={pruner.name}: it {problem}; prune_d prunes the backbone inside the "
            "trained detector to a predefined target (pruner=l1 with pruner.variant=A or B)."
        )
    assert target is not None
    return pruner, target


def _check_backbone(settings: Settings) -> None:
    """An ImageNet ResNet, or a :class:`UserError` naming the model's family."""
    try:
        family = model_info(settings.model.name).make_spec(1000).family
    except UnknownModelError:
        return  # the classification plan names the unknown model
    if family != BACKBONE_FAMILY:
        raise UserError(
            f"task=detection needs an ImageNet ResNet as the backbone (family '{BACKBONE_FAMILY}', e.g. "
            f"model=resnet34 dataset=imagenet), but model '{settings.model.name}' is family '{family}'."
        )


def plan_detection(settings: Settings) -> CellPlan:
    """The plan of a detection cell: its classification cell's plan carrying a :class:`DetectionPart`."""
    task = settings.task
    assert isinstance(task, DetectionSettings)
    _check_backbone(settings)
    data = task.data
    data.validate("task.data")
    if data.source != "shapes" and not settings.dry_run:  # the folders, before any classification stage trains
        check_voc_root(str(data.root), VOC_YEARS[data.source], "task.data.root")
    plan = build_plan(load_settings(_classification_config(settings)))
    pruner = pruned = None
    if task.transfer == "prune_d":
        pruner, pruned = _prune_in_detector(settings, plan.large)
    backbone = plan.large if plan.pruned is None and plan.retrain.name != "retrain" else plan.pruned
    part = DetectionPart(task, settings, backbone, pruner, pruned)
    pruner_name = settings.pruner.name if task.transfer != "unpruned" else "none"
    cell = {**plan.cell, "pruner": pruner_name, "schedule": task.transfer, "task": "detection"}
    return dataclasses.replace(plan, cell=cell, detection=part)
