"""What a pruner's ``decide`` receives: the trained model to prune and, from the Lightning run it is called in, the
data (calibration batches of ``trainer.datamodule``), the strategy and the device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from rethink.arch.spec import ArchSpec

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from rethink.pruning.decision import Decision


@dataclass(frozen=True)
class CalibrationShape:
    """What the plan knows of the calibration data before any is read: ``images`` images of ``image_size`` pixels
    square in ``batches`` batches of (at most) ``batch_size``."""

    batches: int
    batch_size: int
    image_size: int
    images: int


@dataclass(frozen=True)
class SourceModels:
    """The source cell's large model, its decided pruned model (None before it is decided), its input size and, for
    a weight-level decision, its keep-masks (what a guided pruner reads of the cell guiding it)."""

    large: ArchSpec
    pruned: ArchSpec | None
    input_size: int
    masks: Mapping[str, Tensor] | None = None


@dataclass
class PruneContext:
    """The inputs of one pruning decision.

    model: a trained copy of the model to prune, built from ``spec``, on the CPU (the pruner may change it);
    target: the predefined pruned architecture, when the pruner has one;
    seed: the cell's seed (e.g. for random choices);
    round / rounds / previous: iterative pruning, round ``round`` of ``rounds``, and the previous round's decision;
    trainer: the Lightning run the decision is made in (None outside one, e.g. in unit tests);
    calibration_batches: how many training batches :meth:`calibration` gives (``calibration.batches``);
    calibration_images_per_class: instead, that many images of every class (``calibration.images_per_class``);
    batches: calibration batches given directly (outside a Lightning run), used instead of the data module's;
    source: the source cell's decided models, for a pruner with a :meth:`~rethink.pruning.Pruner.source` that also
        reads this cell's trained model (transferred guided sparsification).
    """

    model: nn.Module
    spec: ArchSpec
    model_name: str
    seed: int
    target: ArchSpec | None = None
    round: int = 1
    rounds: int = 1
    previous: "Decision | None" = None
    trainer: "pl.Trainer | None" = None
    calibration_batches: int = 0
    batches: list[tuple[Tensor, Tensor]] | None = None
    calibration_images_per_class: int | None = None
    source: SourceModels | None = None

    @property
    def datamodule(self) -> "pl.LightningDataModule | None":
        return None if self.trainer is None else self.trainer.datamodule

    @property
    def strategy(self) -> Any:
        return None if self.trainer is None else self.trainer.strategy

    @property
    def device(self) -> torch.device:
        """Where data-driven computation should run: the run's device (the CPU outside a run)."""
        return torch.device("cpu") if self.trainer is None else self.trainer.strategy.root_device

    def calibration(self) -> list[tuple[Tensor, Tensor]]:
        """The calibration images (normalised, not augmented; labels) in batches, on :attr:`device`.

        The given ``batches``, else ``datamodule.calibration_batches(n[, images_per_class])`` when the data module
        has it (every rethink data module does), else the first ``n`` batches of its ``train_dataloader()``.
        """
        datamodule, count, per_class = self.datamodule, self.calibration_batches, self.calibration_images_per_class
        if self.batches is not None:
            return [(x.to(self.device), y.to(self.device)) for x, y in self.batches]
        if datamodule is None:
            raise ValueError("no calibration data: the decision is not made inside a Lightning run with a datamodule")
        if count < 1 and per_class is None:
            raise ValueError("no calibration data requested: set calibration.batches >= 1")
        if hasattr(datamodule, "calibration_batches"):
            batches = datamodule.calibration_batches(count, *([] if per_class is None else [per_class]))
        elif per_class is not None:
            raise ValueError(
                f"calibration.images_per_class={per_class}: the data module {type(datamodule).__name__} has no "
                "calibration_batches(batches, images_per_class) to draw class-stratified images"
            )
        else:
            batches = []
            for batch in datamodule.train_dataloader():
                batches.append(batch)
                if len(batches) == count:
                    break
        return [(x.to(self.device), y.to(self.device)) for x, y in batches]

    def training_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over the run's training loader, as a training step sees its batches (on :attr:`device`, through
        the data module's ``on_after_batch_transfer``: normalised); outside a run, the calibration batches."""
        datamodule = self.datamodule
        if datamodule is None:
            yield from self.calibration()
            return
        for images, labels in datamodule.train_dataloader():
            batch = (images.to(self.device), labels.to(self.device))
            yield datamodule.on_after_batch_transfer(batch, 0)
