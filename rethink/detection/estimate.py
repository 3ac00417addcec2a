"""The detection stages of a detection cell in a sweep's dry run (:mod:`rethink.pipeline.estimate`): their keys
where the plan determines them, their epochs, the backbone's FLOPs per image at the detection input size (the RPN
and box heads are not counted: a lower bound) and whether the store holds them."""

from __future__ import annotations

from pathlib import Path

from rethink.arch.cost import counted_flops
from rethink.detection import keys
from rethink.detection.plan import DETECT, DETECT_FINETUNE, DETECT_PRUNE
from rethink.pipeline.estimate import StageEstimate, stage_estimates, stored
from rethink.pipeline.plan import CellPlan


def detection_estimates(plan: CellPlan) -> list[StageEstimate]:
    """The classification cell's stages, then the detection stages, in the runner's order."""
    estimates = stage_estimates(plan)
    part, root = plan.detection, Path(plan.settings.paths.artifact_dir)
    s, images = part.settings, part.settings.data.num_train if part.settings.data.source == "shapes" else None
    backbone_key = estimates[-1].key if estimates else None

    def add(stage: str, key: str | None, epochs: int, flops: int) -> None:
        estimates.append(
            StageEstimate(stage, key, epochs, flops, images, stored(root, stage, key), part.backbone is None)
        )

    flops = counted_flops(part.backbone_cost(part.backbone or plan.large)["flops"])
    detect = (
        None if backbone_key is None or part.backbone is None else keys.detect_key(plan, backbone_key, part.backbone)
    )
    add(DETECT, detect, s.epochs, flops)
    if part.pruner is not None:
        prune = None if detect is None else keys.detect_prune_key(plan, detect)
        add(DETECT_PRUNE, prune, 0, flops)
        finetune = None if prune is None else keys.detect_finetune_key(plan, prune)
        add(DETECT_FINETUNE, finetune, s.finetune_epochs, counted_flops(part.backbone_cost(part.pruned)["flops"]))
    return estimates
