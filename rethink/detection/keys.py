"""Keys of the detection stages (:mod:`rethink.pipeline.keys` for the rules): a detector trained from a backbone
artifact, a pruning decision inside it and its fine-tuning. The transfer setting itself is not hashed — the backbone
artifact says where the weights came from — so prune_d's first stage is the unpruned transfer's detector."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from rethink.pipeline.keys import content_key, hashed

if TYPE_CHECKING:
    from rethink.arch.spec import ArchSpec
    from rethink.pipeline.plan import CellPlan

# settings of task=detection that do not change what a stage computes
NOT_HASHED = ("transfer", "finetune_epochs", "finetune_lr")
DATA_NOT_HASHED = ("root", "num_workers", "test_batch_size")


def _task(plan: "CellPlan") -> dict[str, Any]:
    values = dataclasses.asdict(plan.detection.settings)
    values["data"] = {k: v for k, v in values["data"].items() if k not in DATA_NOT_HASHED}
    return {k: v for k, v in values.items() if k not in NOT_HASHED}


def _shared(plan: "CellPlan") -> dict[str, Any]:
    s = plan.settings
    return {
        "task": _task(plan),
        "optim": dataclasses.asdict(s.optim),
        "trainer": hashed("trainer", s.trainer.arguments),
        "seed": s.seed,
    }


def detect_key(plan: "CellPlan", backbone_key: str, backbone: "ArchSpec") -> str:
    """The detector trained from the backbone artifact ``backbone_key`` (a classification stage) of spec
    ``backbone``."""
    return content_key({"stage": "detect", "backbone": backbone_key, "spec": backbone.to_dict(), **_shared(plan)})


def detect_prune_key(plan: "CellPlan", detect: str) -> str:
    """prune_d's decision on the backbone of detector ``detect``."""
    pruner = plan.detection.pruner.settings.key_values()
    return content_key({"stage": "detect_prune", "source": detect, "pruner": pruner})


def detect_finetune_key(plan: "CellPlan", prune: str) -> str:
    """prune_d's fine-tuning of the detector pruned by decision ``prune``."""
    s = plan.detection.settings
    recipe = {"epochs": s.finetune_epochs, "lr": s.finetune_lr}
    return content_key({"stage": "detect_finetune", "prune": prune, "recipe": recipe, **_shared(plan)})
