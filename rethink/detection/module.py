"""The LightningModule of detection transfer: Faster R-CNN over one of our ResNets, trained with SGD (linear
warm-up, step drops) and evaluated by :class:`DetectionMetric` (VOC AP50 and COCO mAP)."""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from rethink.arch import ArchSpec
from rethink.detection.metric import DetectionMetric
from rethink.detection.model import Head, build_detector

Targets = list[dict[str, Tensor]]  # per image: boxes (N x 4 xyxy float), labels (N, int64 1..C), difficult (N bool)
Batch = tuple[list[Tensor], Targets]  # images: 3 x H x W in [0, 1]
LOGGED = ("map", "map_50", "voc07_map_50", "voc_area_map_50")


@dataclass(frozen=True)
class DetectionRecipe:
    """SGD for ``epochs`` epochs: the LR rises linearly from ``lr * warmup_factor`` to ``lr`` over the first
    ``warmup_iters`` iterations, then is multiplied by ``lr_gamma`` at each of the ``milestones`` (epochs)."""

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    warmup_iters: int
    warmup_factor: float
    milestones: tuple[int, ...]
    lr_gamma: float
    clip_norm: float | None = None  # the gradients' total norm is clipped to this before each step (None: not)


def lr_factor(step: int, steps_per_epoch: int, recipe: DetectionRecipe) -> float:
    """The LR multiplier at optimizer step ``step`` (0-based): the warm-up ramp times the milestone drops."""
    warmup = 1.0
    if step < recipe.warmup_iters:
        progress = step / recipe.warmup_iters
        warmup = recipe.warmup_factor * (1 - progress) + progress
    drops = bisect_right(sorted(recipe.milestones), step // steps_per_epoch)
    return warmup * recipe.lr_gamma**drops


def make_scheduler(
    optimizer: torch.optim.Optimizer, recipe: DetectionRecipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The recipe's LR schedule as one scheduler stepped after every optimizer step."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, recipe))


class DetectionModule(pl.LightningModule):
    """Trains the detector (the sum of its RPN and RoI-head losses, each logged) and evaluates it each validation
    epoch: ``val/map``, ``val/map_50``, ``val/voc07_map_50``, ``val/voc_area_map_50`` in percent, and the best and
    last values in :attr:`best` (``voc07_map_50``) / :attr:`last` (every metric, per-class AP50 too).

    Training ignores objects marked ``difficult`` (as py-faster-rcnn's ``use_diff=False``); evaluation gives them to
    the metric, which ignores detections of them.
    """

    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int,
        head: Head,
        recipe: DetectionRecipe,
        min_size: int,
        max_size: int,
        trainable_layers: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "spec": spec.to_dict(),
                "num_classes": num_classes,
                "head": head,
                "recipe": asdict(recipe),
                "min_size": min_size,
                "max_size": max_size,
                "trainable_layers": trainable_layers,
            }
        )
        self.spec, self.recipe = spec, recipe
        self.detector = build_detector(spec, num_classes, head, min_size, max_size, trainable_layers)
        self.metric = DetectionMetric()
        self.best: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def forward(self, images: list[Tensor]) -> Targets:
        return self.detector(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, targets = batch
        losses = self.detector(images, [_without_difficult(t) for t in targets])
        loss = sum(losses.values())
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=len(images))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, targets = batch
        self.metric.update(self.detector(images), targets)

    def on_validation_epoch_end(self) -> None:
        metrics = self.metric.compute()
        self.metric.reset()
        if self.trainer.sanity_checking:
            return
        for name in LOGGED:
            self.log(f"val/{name}", metrics[name])
        self.last = metrics
        value = metrics["voc07_map_50"]
        if value > self.best.get("voc07_map_50", -math.inf):  # nan (no ground truth) is never best
            self.best["voc07_map_50"] = value
        if self.best:
            self.log("val/voc07_map_50_best", self.best["voc07_map_50"])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.recipe.clip_norm is not None:
            params = [p for p in self.detector.parameters() if p.requires_grad and p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.recipe.clip_norm)

    def configure_optimizers(self) -> dict[str, Any]:
        recipe = self.recipe
        params = [p for p in self.detector.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
        scheduler = make_scheduler(optimizer, recipe, _steps_per_epoch(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rethink_detection"] = {"best": dict(self.best), "last": dict(self.last)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("rethink_detection", {})
        self.best, self.last = dict(saved.get("best", {})), dict(saved.get("last", {}))


def _without_difficult(target: dict[str, Tensor]) -> dict[str, Tensor]:
    """The boxes and labels of the objects not marked difficult."""
    keep = ~target["difficult"] if "difficult" in target else torch.ones_like(target["labels"], dtype=torch.bool)
    return {"boxes": target["boxes"][keep], "labels": target["labels"][keep]}


def _steps_per_epoch(trainer: pl.Trainer) -> int:
    """Optimizer steps per training epoch of this process (the milestones are epochs, the schedule counts steps)."""
    if trainer.train_dataloader is None:
        trainer.fit_loop.setup_data()  # as Trainer.estimated_stepping_batches does, to know the batch count
    batches = trainer.num_training_batches
    if math.isinf(batches):
        raise ValueError("the detection LR schedule needs training data of known length (milestones are epochs)")
    return max(1, math.ceil(batches / trainer.accumulate_grad_batches))
