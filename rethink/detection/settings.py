"""The schema of ``task=detection`` (conf/task/detection.yaml): how the backbone was obtained (``transfer``), the
detector's head, its data and its training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rethink.detection.data import DetectionDataSettings
from rethink.errors import UserError
from rethink.settings.schema import TaskSettings
from rethink.settings.typed import NonNegativeInt, PositiveFloat, PositiveInt

Transfer = Literal["unpruned", "prune_c", "prune_d", "scratch_e", "scratch_b"]
# the paper's names of the transfer settings (the columns of its detection table)
TRANSFER_TITLES = {
    "unpruned": "Unpruned",
    "prune_c": "Prune-C",
    "prune_d": "Prune-D",
    "scratch_e": "Scratch-E",
    "scratch_b": "Scratch-B",
}
# the classification schedule whose final model each transfer setting takes as its backbone
CLASSIFICATION_SCHEDULE = {
    "unpruned": "baseline",
    "prune_c": "finetune",
    "prune_d": "baseline",
    "scratch_e": "scratch_e",
    "scratch_b": "scratch_b",
}


@dataclass(frozen=True)
class DetectionSettings(TaskSettings):
    """``task=detection``."""

    name: str = "detection"
    transfer: Transfer = "unpruned"
    head: Literal["fpn", "c4"] = "fpn"
    data: DetectionDataSettings = field(default_factory=DetectionDataSettings)
    epochs: PositiveInt = 12
    lr: PositiveFloat = 0.005
    clip_norm: PositiveFloat | None = 10.0
    milestones: list[NonNegativeInt] = field(default_factory=lambda: [8, 11])
    warmup_iters: NonNegativeInt = 500
    warmup_factor: PositiveFloat = 0.001
    min_size: PositiveInt = 600
    max_size: PositiveInt = 1000
    trainable_layers: NonNegativeInt = 3
    finetune_epochs: PositiveInt = 4
    finetune_lr: PositiveFloat = 0.001

    def validate(self, prefix: str) -> None:
        late = [m for m in self.milestones if m >= self.epochs]
        if late:
            raise UserError(
                f"{prefix}.milestones={self.milestones}: {late[0]} is not before {prefix}.epochs={self.epochs}."
            )
        if self.trainable_layers > 5:
            raise UserError(f"{prefix}.trainable_layers={self.trainable_layers}: expected 0 to 5 (backbone stages).")
        if self.min_size > self.max_size:
            raise UserError(f"{prefix}.min_size={self.min_size} is larger than {prefix}.max_size={self.max_size}.")
