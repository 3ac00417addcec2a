"""Progress that says where a run is: the cell, the stage, the 1-based epoch, the loss and the test top-1 of the last
epoch. ``progress_bar: rich | tqdm`` draws Lightning's bar of that style; ``lines`` prints one line per epoch instead
(logs, CI, the demo); ``trainer.enable_progress_bar=false`` hides all of them."""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar
from pytorch_lightning.trainer.states import TrainerFn

HIDDEN = ("v_num",)  # Lightning's logger version: meaningless here
RENAMED = {"train/loss_step": "loss", "train/loss_epoch": "epoch loss"}


def epoch_description(label: str, epoch: int, epochs: int | None) -> str:
    """``cifar10/resnet56/l1 A/scratch_b seed 1 | retrain | epoch 3/178`` for the 0-based Lightning ``epoch``."""
    return f"{label} | epoch {epoch + 1}" + ("" if epochs is None else f"/{epochs}")


def bar_metrics(metrics: dict[str, Any], module: pl.LightningModule) -> dict[str, Any]:
    """The bar's numbers: the loss, and the test top-1 (%) of the last finished epoch when there is one."""
    shown = {RENAMED.get(k, k): v for k, v in metrics.items() if k not in HIDDEN}
    last = getattr(module, "last", {})
    if "top1" in last:
        shown["test top-1"] = f"{100 * last['top1']:.2f}%"
    return shown


class _Described(ProgressBar):
    """What both bar styles add to Lightning's: a label (cell and stage) and :func:`bar_metrics`."""

    label = ""

    @property
    def validation_description(self) -> str:
        return f"{self.label} | test" if self.label else "Test"

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return bar_metrics(super().get_metrics(trainer, pl_module), pl_module)


class StageRichProgressBar(_Described, RichProgressBar):
    """Lightning's rich bar, described by :func:`epoch_description`."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def _get_train_description(self, current_epoch: int) -> str:
        return epoch_description(self.label, current_epoch, self.trainer.max_epochs)


class StageTQDMProgressBar(_Described, TQDMProgressBar):
    """Lightning's tqdm bar, described by :func:`epoch_description`."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            epoch_description(self.label, trainer.current_epoch, trainer.max_epochs)
        )


class EpochLines(Callback):
    """``progress_bar=lines``: one line on stderr per training epoch (:func:`epoch_description`, the epoch's mean
    loss, its test top-1) and one for an evaluation-only run (the prune stage's pruned model)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def _say(self, trainer: pl.Trainer, pl_module: pl.LightningModule, where: str) -> None:
        if not trainer.is_global_zero:
            return
        shown = bar_metrics(
            {k: v for k, v in trainer.progress_bar_metrics.items() if k != "train/loss_step"}, pl_module
        )
        numbers = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        print(f"rethink: {where}  {numbers}".rstrip(), file=sys.stderr, flush=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._say(trainer, pl_module, epoch_description(self.label, trainer.current_epoch, trainer.max_epochs))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._say(trainer, pl_module, self.label)


def progress_callback(style: str, label: str) -> Callback:
    """The progress display of ``progress_bar`` style ``rich``, ``tqdm`` or ``lines``, labelled with cell and stage."""
    if style == "lines":
        return EpochLines(label)
    return StageTQDMProgressBar(label) if style == "tqdm" else StageRichProgressBar(label)
