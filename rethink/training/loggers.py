"""The loggers of a stage: CSV always, Weights & Biases when ``logger=wandb`` (offline without an API key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from rethink.settings.schema import Settings


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


def experiment_tags() -> list[str]:
    """``experiment=paper/l1_cifar10``, ``experiment/paper/row=resnet56_a``: the experiment configs Hydra composed."""
    if not HydraConfig.initialized():
        return []
    choices = HydraConfig.get().runtime.choices
    return [f"{group}={name}" for group, name in choices.items() if group.startswith("experiment") and name]


def make_loggers(
    settings: Settings, cell: dict[str, Any], group: str, stage: str, log_dir: Path, wandb_dir: Path | None = None
) -> list[Logger]:
    """CSV always (``log_dir/metrics.csv``); W&B when ``logger.wandb`` is set: ``group`` = the cell of a table
    (dataset/model/pruner setting/schedule), job_type = stage, tags = ``logger.wandb.tags`` + the experiment, files
    under ``wandb_dir`` (the cell's run directory; default ``log_dir``)."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(log_dir), name="", version="")]
    wandb = settings.logger.wandb
    if wandb is not None:
        loggers.append(
            QuietWandbLogger(
                project=wandb.project,
                entity=wandb.entity,
                group=group,
                job_type=stage,
                name=f"{group}/seed{cell['seed']}/{stage}",
                tags=list(wandb.tags) + experiment_tags(),
                save_dir=str(wandb_dir or log_dir),
                mode=wandb_mode(wandb.mode),
                config=settings.config(),
            )
        )
    return loggers


class QuietWandbLogger(WandbLogger):
    """Lightning's W&B logger without the ``anonymous`` argument it always passes to ``wandb.init``, which newer W&B
    versions deprecate with a warning on every run, whatever its value."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)


@rank_zero_only  # DDP: the other ranks hold a dummy W&B experiment
def summarize(loggers: list[Logger], values: dict[str, Any]) -> None:
    """The stage's final results in the W&B run summary (what dashboards and ``wandb sync`` show per run)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger.experiment is not None:
            logger.experiment.summary.update({f"final/{k}": v for k, v in values.items() if k != "unit"})


def finish(settings: Settings, loggers: list[Logger]) -> None:
    """Flush the loggers and always finish the W&B run, so the next stage or cell starts a run of its own."""
    for logger in loggers:
        logger.finalize("success")
    if settings.logger.wandb is not None:
        import wandb

        wandb.finish()
