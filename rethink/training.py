"""One ``Trainer.fit`` of one stage: a freshly built module, epoch checkpoints for resuming, final accuracies."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities import rank_zero_only

from rethink.arch import ArchSpec
from rethink.errors import UserError
from rethink.lit_module import ClassificationModule
from rethink.results.naming import cell_group
from rethink.store import leader_value

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"


@dataclass(frozen=True)
class Recipe:
    """The optimisation of one stage."""

    epochs: int
    lr: float
    milestones: list[int]
    lr_gamma: float
    momentum: float
    weight_decay: float
    nesterov: bool


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file and renamed, so a kill mid-write never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def wandb_mode(requested: str | None) -> str:
    """The W&B mode to use: as requested, else WANDB_MODE, else online only when an API key is configured."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    return "online" if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore") else "offline"


def make_loggers(
    cfg: DictConfig, cell: dict[str, Any], stage: str, log_dir: Path, wandb_dir: Path | None = None
) -> list[Logger]:
    """CSV always (``log_dir/metrics.csv``); W&B when ``logger.wandb`` is set: group = the cell (dataset/model/pruner
    setting/schedule), job_type = stage, tags = ``logger.wandb.tags`` + the experiment, files under ``wandb_dir`` (the
    cell's run directory; default ``log_dir``)."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(log_dir), name="", version="")]
    wandb_cfg = cfg.logger.get("wandb")
    if wandb_cfg:
        from pytorch_lightning.loggers import WandbLogger

        group = cell_group(cell, OmegaConf.to_container(cfg.pruner, resolve=True))
        loggers.append(
            WandbLogger(
                project=wandb_cfg.project,
                entity=wandb_cfg.entity,
                group=group,
                job_type=stage,
                name=f"{group}/seed{cell['seed']}/{stage}",
                tags=list(wandb_cfg.tags) + experiment_tags(),
                save_dir=str(wandb_dir or log_dir),
                mode=wandb_mode(wandb_cfg.mode),
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        )
    return loggers


def experiment_tags() -> list[str]:
    """``experiment=paper/l1_cifar10``, ``experiment/paper/row=resnet56_a``: the experiment configs Hydra composed."""
    if not HydraConfig.initialized():
        return []
    choices = HydraConfig.get().runtime.choices
    return [f"{group}={name}" for group, name in choices.items() if group.startswith("experiment") and name]


def make_trainer(
    cfg: DictConfig, epochs: int, loggers: list[Logger], checkpoint_dir: Path, callbacks: Sequence[Callback] = ()
) -> pl.Trainer:
    """A Trainer for one stage; the data modules shard data themselves, so Lightning must not add samplers."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    if kwargs.get("enable_progress_bar", True) and cfg.get("progress_bar", "rich") == "rich":
        callbacks = [RichProgressBar(), *callbacks]
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
    except (TypeError, ValueError) as exc:
        raise UserError(f"trainer config: {exc}. Check the trainer.* overrides.") from None


def resumable_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The stage's last epoch checkpoint if it loads; an unreadable one is removed (the stage restarts)."""
    path = checkpoint_dir / LAST_CHECKPOINT
    if not path.is_file():
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable checkpoint: start the stage over rather than fail
        log.warning("checkpoint %s is unreadable (%s); restarting the stage", path, exc)
        path.unlink()
        return None
    return path


@dataclass
class FitResult:
    """What one stage produced."""

    module: ClassificationModule
    accuracy: dict[str, Any]
    resumed: bool
    is_global_zero: bool


def fit(
    cfg: DictConfig,
    cell: dict[str, Any],
    stage: str,
    spec: ArchSpec,
    recipe: Recipe,
    datamodule: pl.LightningDataModule,
    work_dir: Path,
    initial_state: dict[str, torch.Tensor] | None = None,
    before_fit: Callable[[ClassificationModule], None] | None = None,
    callbacks: Sequence[Callback] = (),
    wandb_dir: Path | None = None,
) -> FitResult:
    """Build a seeded module (optionally loading ``initial_state``), train it, resume from ``work_dir`` if possible."""
    pl.seed_everything(cell["seed"], workers=True, verbose=False)
    module = ClassificationModule(
        spec.to_dict(),
        lr=recipe.lr,
        milestones=recipe.milestones,
        lr_gamma=recipe.lr_gamma,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
        top5=cell["dataset"] == "imagenet",
    )
    if initial_state is not None:
        module.model.load_state_dict(initial_state, strict=True)
    if before_fit is not None:
        before_fit(module)
    checkpoint_dir = work_dir / "checkpoints"
    resume_from = leader_value(lambda: resumable_checkpoint(checkpoint_dir))  # DDP: every rank resumes alike
    loggers = make_loggers(cfg, cell, stage, work_dir, wandb_dir)
    trainer = make_trainer(cfg, recipe.epochs, loggers, checkpoint_dir, callbacks)
    accuracy: dict[str, Any] = {"unit": "percent"}
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        for name in module.best:
            accuracy[f"{name}_final"] = round(100 * module.last[name], 4)
            accuracy[f"{name}_best"] = round(100 * module.best[name], 4)
        summarize(loggers, {**accuracy, "epochs": recipe.epochs})
    finally:
        finish(cfg, loggers)
    return FitResult(module, accuracy, resume_from is not None, trainer.is_global_zero)


@rank_zero_only  # DDP: the other ranks hold a dummy W&B experiment
def summarize(loggers: list[Logger], values: dict[str, Any]) -> None:
    """The stage's final results in the W&B run summary (what dashboards and ``wandb sync`` show per run)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger.experiment is not None:
            logger.experiment.summary.update({f"final/{k}": v for k, v in values.items() if k != "unit"})


def finish(cfg: DictConfig, loggers: list[Logger]) -> None:
    """Flush the loggers and always finish the W&B run, so the next stage or cell starts a run of its own."""
    for logger in loggers:
        logger.finalize("success")
    if cfg.logger.get("wandb"):
        import wandb

        wandb.finish()


def evaluate(
    cfg: DictConfig,
    cell: dict[str, Any],
    spec: ArchSpec,
    state: dict[str, torch.Tensor],
    datamodule: pl.LightningDataModule,
    work_dir: Path,
    wandb_dir: Path | None = None,
) -> dict[str, Any]:
    """Test accuracy (percent) of given weights, without training."""
    module = ClassificationModule(spec.to_dict(), lr=0.0, milestones=[], top5=cell["dataset"] == "imagenet")
    module.model.load_state_dict(state, strict=True)
    loggers = make_loggers(cfg, cell, "evaluate", work_dir, wandb_dir)
    try:
        make_trainer(cfg, 1, loggers, work_dir / "checkpoints").validate(module, datamodule=datamodule, verbose=False)
        accuracy = {"unit": "percent", **{f"{k}_final": round(100 * v, 4) for k, v in module.last.items()}}
        summarize(loggers, accuracy)
    finally:
        finish(cfg, loggers)
    return accuracy
