"""Progress that says where a run is: the cell, the stage, the 1-based epoch, the loss and the test top-1 of the last
epoch. ``progress_bar: rich | tqdm`` draws Lightning's bar of that style; ``lines`` prints one line per epoch instead,
with the stage's elapsed time and the epoch's training images/s (logs, CI, the demo); ``auto`` (the default) is rich
on a terminal and lines otherwise; ``trainer.enable_progress_bar=false`` hides all of them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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


def elapsed_text(seconds: float) -> str:
    """``elapsed 0:03:25`` (hours:minutes:seconds)."""
    minutes, secs = divmod(int(seconds), 60)
    return f"elapsed {minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def batch_images(batch: Any) -> int:
    """Images in a batch: ``(images, targets)`` with a tensor or a list of images first; 0 when it cannot be told."""
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    return len(first) if hasattr(first, "__len__") else 0


class EpochLines(Callback):
    """``progress_bar=lines``: one line on stderr per training epoch (:func:`epoch_description`, the epoch's mean
    loss, its test top-1, its training images/s over all processes, the time since the stage started) and one for an
    evaluation-only run (the prune stage's pruned model), so a slow run can be told from a stuck one."""

    def __init__(self, label: str, clock: Callable[[], float] = time.perf_counter) -> None:
        self.label, self.clock = label, clock
        self.started = clock()
        self.images, self.epoch_started, self.trained_until = 0, self.started, self.started

    def _say(self, trainer: pl.Trainer, pl_module: pl.LightningModule, where: str, speed: str = "") -> None:
        if not trainer.is_global_zero:
            return
        shown = bar_metrics(
            {k: v for k, v in trainer.progress_bar_metrics.items() if k != "train/loss_step"}, pl_module
        )
        numbers = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        parts = [f"rethink: {where}", numbers, speed, elapsed_text(self.clock() - self.started)]
        print("  ".join(p for p in parts if p), file=sys.stderr, flush=True)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.images, self.epoch_started = 0, self.clock()
        self.trained_until = self.epoch_started

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.images += batch_images(args[1]) * trainer.world_size  # args: outputs, batch, batch_idx
        self.trained_until = self.clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = self.trained_until - self.epoch_started  # training batches only, not the epoch's test pass
        speed = f"{self.images / seconds:.0f} img/s" if self.images and seconds > 0 else ""
        where = epoch_description(self.label, trainer.current_epoch, trainer.max_epochs)
        self._say(trainer, pl_module, where, speed)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._say(trainer, pl_module, self.label)


def progress_style(style: str) -> str:
    """``auto``: Lightning's rich bar on a terminal, one line per epoch when stderr is a file or pipe (whose readers —
    nohup, CI, SLURM logs — get a rich bar as a wall of control codes); any other style as it is."""
    if style != "auto":
        return style
    return "rich" if sys.stderr.isatty() else "lines"


def progress_callback(style: str, label: str) -> Callback:
    """The progress display of ``progress_bar`` style ``rich``, ``tqdm`` or ``lines``, labelled with cell and stage."""
    if style == "lines":
        return EpochLines(label)
    return StageTQDMProgressBar(label) if style == "tqdm" else StageRichProgressBar(label)
