"""Lightning runs of a stage: ``fit`` (a freshly built module, epoch checkpoints for resuming, final accuracies) and
``validate`` (evaluate a module, e.g. with the pruning callback deciding in its setup)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from rethink.arch import ArchSpec
from rethink.distributed import leader_value, rank_batch_size
from rethink.errors import UserError
from rethink.launch import held_slot, pinned_arguments
from rethink.settings.schema import Settings
from rethink.training.console import quiet_lightning
from rethink.training.loggers import finish, make_loggers, summarize
from rethink.training.module import ClassificationModule
from rethink.training.progress_bar import progress_callback, progress_style
from rethink.training.recipes import Recipe

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"


@dataclass(frozen=True)
class RunContext:
    """What every Lightning run of a cell shares: its settings, identity, W&B group, data and run directory."""

    settings: Settings
    cell: dict[str, Any]
    group: str  # the cell of a table, e.g. ``cifar10/resnet56/l1 A/scratch_b`` (W&B group)
    datamodule: pl.LightningDataModule
    run_dir: Path

    @property
    def top5(self) -> bool:
        return bool(getattr(self.settings.dataset, "top5", False))

    def label(self, stage: str) -> str:
        """``cifar10/resnet56/l1 A/scratch_b seed 1 | retrain``: the cell and the stage, for the progress bar."""
        return f"{self.group} seed {self.cell['seed']} | {stage}"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file and renamed, so a kill mid-write never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def check_accelerator(arguments: Mapping[str, Any]) -> None:
    """Refuse a GPU run on a machine without (enough) CUDA GPUs before any data is read; Lightning would fail with
    a stack trace when the stage's trainer is built."""
    accelerator = str(arguments.get("accelerator", "auto")).lower()
    if accelerator not in ("gpu", "cuda") or (accelerator == "gpu" and torch.backends.mps.is_available()):
        return
    found, devices = torch.cuda.device_count(), arguments.get("devices", 1)
    if found == 0:
        raise UserError(
            f"trainer.accelerator={accelerator} asks for a GPU, but this machine has no CUDA GPU that torch can use "
            "(torch.cuda.is_available() is False). Run on the CPU with trainer=cpu."
        )
    if isinstance(devices, int) and devices > found:
        raise UserError(f"trainer.devices={devices}: this machine has {found} CUDA GPU(s); ask for at most {found}.")


def make_trainer(
    settings: Settings,
    epochs: int,
    loggers: list[Logger],
    checkpoint_dir: Path,
    callbacks: Sequence[Callback] = (),
    label: str = "",
) -> pl.Trainer:
    """A Trainer for one stage; the data modules shard data themselves, so Lightning must not add samplers. Its
    progress bar (``progress_bar`` style) names the run by ``label`` (cell and stage)."""
    quiet_lightning(settings.verbose)
    kwargs = pinned_arguments(settings.trainer.arguments)  # launch.device_slots: the held slot's GPU
    if kwargs.get("enable_progress_bar", True):
        style = progress_style(settings.progress_bar)
        callbacks = [progress_callback(style, label), *callbacks]
        kwargs["enable_progress_bar"] = style != "lines"  # lines replace Lightning's bar
    checkpoint = ModelCheckpoint(
        dirpath=str(checkpoint_dir), filename="last", save_top_k=1, every_n_epochs=1, enable_version_counter=False
    )
    try:
        return pl.Trainer(
            **kwargs,
            max_epochs=epochs,
            logger=loggers,
            default_root_dir=str(checkpoint_dir),
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            callbacks=[checkpoint, *callbacks],
            plugins=[AtomicCheckpointIO()],
        )
    except (TypeError, ValueError, MisconfigurationException) as exc:
        raise UserError(f"trainer config: {exc}. Check the trainer.* overrides.") from None


def resumable_checkpoint(checkpoint_dir: Path) -> tuple[Path, int] | None:
    """The stage's last epoch checkpoint and the epoch it ends, if it loads; an unreadable one is removed (the stage
    restarts)."""
    path = checkpoint_dir / LAST_CHECKPOINT
    if not path.is_file():
        return None
    try:
        epoch = int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception as exc:  # any unreadable checkpoint: start the stage over rather than fail
        log.warning("checkpoint %s is unreadable (%s); restarting the stage", path, exc)
        path.unlink()
        return None
    return path, epoch


def _accuracy(module: ClassificationModule, with_best: bool) -> dict[str, Any]:
    accuracy: dict[str, Any] = {"unit": "percent"}
    for name in module.last:
        accuracy[f"{name}_final"] = round(100 * module.last[name], 4)
        if with_best:
            accuracy[f"{name}_best"] = round(100 * module.best[name], 4)
    return accuracy


@dataclass
class FitResult:
    """What one training stage produced."""

    module: ClassificationModule
    accuracy: dict[str, Any]
    resumed: bool
    is_global_zero: bool
    optimizer_steps: int  # over the whole stage, the same on every rank
    batch: dict[str, int]  # the global batch, the number of processes and each one's share
    device: str  # what it ran on (:func:`device_label`)


def fit(
    run: RunContext,
    stage: str,
    spec: ArchSpec,
    recipe: Recipe,
    work_dir: Path,
    initial_state: dict[str, torch.Tensor] | None = None,
    before_fit: Callable[[ClassificationModule], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Build a seeded module (starting from ``initial_state`` if given), train it, resume from ``work_dir``."""
    pl.seed_everything(run.cell["seed"], workers=True, verbose=False)
    module = ClassificationModule(spec, recipe, top5=run.top5, stage=stage, speed=run.settings.speed)
    if initial_state is not None:
        module.install(spec, initial_state)
    if before_fit is not None:
        before_fit(module)
    checkpoint_dir = work_dir / "checkpoints"
    resume = leader_value(lambda: resumable_checkpoint(checkpoint_dir))  # DDP: every rank resumes alike
    resume_from, resumed_epoch = resume or (None, None)
    loggers = make_loggers(run.settings, run.cell, run.group, stage, work_dir, run.run_dir, resumed_epoch)
    trainer = make_trainer(run.settings, recipe.epochs, loggers, checkpoint_dir, callbacks, run.label(stage))
    try:
        trainer.fit(module, datamodule=run.datamodule, ckpt_path=resume_from, weights_only=True)
        accuracy = _accuracy(module, with_best=True)
        summarize(loggers, {**accuracy, "epochs": recipe.epochs})
    finally:
        finish(run.settings, loggers)
    world = trainer.world_size
    batch = {"global": run.datamodule.batch_size, "world_size": world}
    batch["per_rank"] = rank_batch_size(batch["global"], world)
    device, resumed = device_label(trainer), resume_from is not None
    return FitResult(module, accuracy, resumed, trainer.is_global_zero, trainer.global_step, batch, device)


def device_label(trainer: pl.Trainer) -> str:
    """What a Lightning run ran on: the accelerator type, the device name (CUDA) and the process count when more than
    one, e.g. ``cpu``, ``cuda: NVIDIA H200 x2``, a pinned job's slot: ``cuda: NVIDIA H200 (device slot 3)``."""
    device = trainer.strategy.root_device
    name = f": {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    slot = "" if held_slot() is None else f" (device slot {held_slot()})"
    return f"{device.type}{name}" + (f" x{trainer.world_size}" if trainer.world_size > 1 else "") + slot


def validate(
    run: RunContext,
    stage: str,
    spec: ArchSpec,
    state: dict[str, torch.Tensor],
    work_dir: Path,
    callbacks: Sequence[Callback] = (),
) -> tuple[ClassificationModule, dict[str, Any]]:
    """Test accuracy (percent) of ``spec`` carrying ``state``, in a Lightning run whose ``callbacks`` may replace the
    network in their setup (the pruning callback); returns the module as it was evaluated and its accuracy."""
    recipe = Recipe(1, 0.0, [], 0.1, 0.0, 0.0, False)
    module = ClassificationModule(spec, recipe, top5=run.top5, stage=stage, speed=run.settings.speed)
    module.install(spec, state)
    loggers = make_loggers(run.settings, run.cell, run.group, stage, work_dir, run.run_dir)
    try:
        trainer = make_trainer(run.settings, 1, loggers, work_dir / "checkpoints", callbacks, run.label(stage))
        trainer.validate(module, datamodule=run.datamodule, verbose=False)
        accuracy = _accuracy(module, with_best=False)
        summarize(loggers, accuracy)
    finally:
        finish(run.settings, loggers)
    return module, accuracy
