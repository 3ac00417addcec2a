"""The LightningModule of every stage: an architecture built from its ArchSpec, trained with the paper's SGD recipe."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from rethink.arch import ArchSpec, build
from rethink.settings.schema import SpeedSettings
from rethink.training.recipes import Recipe
from rethink.training.speed import as_input, to_memory_format, uses_channels_last


@runtime_checkable
class SelfOptimising(Protocol):
    """A callback that updates some parameters itself (e.g. :class:`rethink.pruning.sss_training.SSSAPG`): the
    optimizer puts them in a group of their own, at the same lr and without weight decay."""

    def self_optimised_parameters(self, pl_module: pl.LightningModule) -> list[str]: ...


class ClassificationModule(pl.LightningModule):
    """Cross-entropy classification with SGD (momentum, weight decay on all parameters but those a callback updates
    itself, :class:`SelfOptimising`) and a multi-step LR.

    Each epoch ends with a pass over the test set (as the reference code does); ``test/top1`` is logged per epoch and
    ``test/top1_best`` tracks the best epoch, in percent like ``train/top1`` and result.json. ``top5`` adds top-5
    accuracy (ImageNet) where it is defined, with 5 classes or more. ``stage`` names the stage the module trains or
    evaluates (pretrain, prune, imp, retrain). ``speed`` sets the memory format of the network and its batches and
    whether training compiles it (:mod:`rethink.training.speed`), applied when a run sets the module up and to every
    network installed after that.
    """

    def __init__(
        self, spec: ArchSpec, recipe: Recipe, top5: bool = False, stage: str = "", speed: SpeedSettings | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"spec": spec.to_dict(), "recipe": asdict(recipe), "top5": top5, "stage": stage})
        self.spec, self.recipe, self.stage = spec, recipe, stage
        self.speed = speed or SpeedSettings(channels_last=False)
        self.channels_last = self.compiled = False  # what setup() applied
        self.model = build(spec)
        num_classes = spec.num_classes
        self.train_loss = MeanMetric()
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        five = top5 and num_classes >= 5
        self.test_top5 = MulticlassAccuracy(num_classes, top_k=5, average="micro") if five else None
        self.best: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def install(self, spec: ArchSpec, state: dict[str, torch.Tensor]) -> None:
        """Make ``spec`` carrying ``state`` the network of this module (before a run sets up its optimizers)."""
        if spec != self.spec:
            self.spec, self.model = spec, build(spec)
            if self.channels_last or self.compiled:  # already set up: the new network runs the same path
                self._accelerate(self.compiled)
        self.model.load_state_dict(state, strict=True)

    def setup(self, stage: str) -> None:
        self._accelerate(compile_model=self.speed.compile and stage == "fit")

    def _accelerate(self, compile_model: bool) -> None:
        self.channels_last = uses_channels_last(self.speed, self.spec)
        to_memory_format(self.model, self.channels_last)
        if compile_model:  # in place: the state dict keeps the model's own names (no ``_orig_mod.``)
            self.model.compile()
        self.compiled = compile_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(as_input(x, self.channels_last))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.train_top1.update(logits, labels)
        self.train_loss.update(loss.detach(), len(labels))
        self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        # over every process's images (torchmetrics reduces them), in the same order on every process
        self.log("train/loss_epoch", self.train_loss.compute(), prog_bar=True)
        self.log("train/top1", 100 * self.train_top1.compute())
        self.train_loss.reset()
        self.train_top1.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("test/loss", F.cross_entropy(logits, labels), on_epoch=True, sync_dist=True)
        self.test_top1.update(logits, labels)
        if self.test_top5 is not None:
            self.test_top5.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        metrics = {"top1": self.test_top1.compute().item()}
        self.test_top1.reset()
        if self.test_top5 is not None:
            metrics["top5"] = self.test_top5.compute().item()
            self.test_top5.reset()
        if self.trainer.sanity_checking:
            return
        for name, value in metrics.items():
            self.best[name] = max(self.best.get(name, 0.0), value)
            self.log(f"test/{name}", 100 * value)
            self.log(f"test/{name}_best", 100 * self.best[name])
        self.last = metrics

    def configure_optimizers(self) -> dict[str, Any]:
        recipe = self.recipe
        optimizer = torch.optim.SGD(
            self._param_groups(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            nesterov=recipe.nesterov,
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(recipe.milestones), gamma=recipe.lr_gamma
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def _param_groups(self) -> list[dict[str, Any]]:
        """Every parameter in one group, but those a callback of the run updates itself (:class:`SelfOptimising`): a
        second group with weight decay 0 (the scheduler moves its lr with the first)."""
        callbacks = [c for c in self.trainer.callbacks if isinstance(c, SelfOptimising)]
        own = {name for callback in callbacks for name in callback.self_optimised_parameters(self)}
        named = dict(self.named_parameters())
        unknown = sorted(own - set(named))
        if unknown:
            raise ValueError(f"a callback updates parameters the module does not have: {unknown[:5]}")
        groups = [{"params": [p for n, p in named.items() if n not in own]}]
        if own:
            groups.append({"params": [p for n, p in named.items() if n in own], "weight_decay": 0.0})
        return groups

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rethink_accuracy"] = {"best": dict(self.best), "last": dict(self.last)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        accuracy = checkpoint.get("rethink_accuracy", {})
        self.best, self.last = dict(accuracy.get("best", {})), dict(accuracy.get("last", {}))
