"""The loggers of a stage: CSV always, Weights & Biases when ``logger=wandb`` (offline without an API key)."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from rethink.distributed import is_distributed_follower
from rethink.settings.schema import Settings


class StageWriter:
    """``metrics.csv`` (and ``hparams.yaml``) of one stage, appended at every save. A stage started afresh starts
    the file afresh; a resumed stage keeps the rows of the epochs its checkpoint holds (``epoch`` <=
    ``resumed_epoch``) and drops those of the epochs it trains again."""

    def __init__(self, log_dir: Path, resumed_epoch: int | None) -> None:
        self.path = log_dir / "metrics.csv"
        self.metrics: list[dict[str, Any]] = []  # rows logged since the last save (Lightning's writer interface)
        self.keys: list[str] = []
        self.hparams: dict[str, Any] = {}
        if self.path.is_file() and resumed_epoch is not None:
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                kept = [row for row in reader if not row.get("epoch") or int(row["epoch"]) <= resumed_epoch]
                self.keys = list(reader.fieldnames or [])
            self._write(kept, "w")
        elif self.path.is_file():
            self.path.unlink()

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        save_hparams_to_yaml(self.path.with_name("hparams.yaml"), self.hparams)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
        self.metrics.append({**row, "step": len(self.metrics) if step is None else step})

    def save(self) -> None:
        """Append the new rows; a new column rewrites the file with the wider header."""
        if not self.metrics:
            return
        new = sorted({key for row in self.metrics for key in row} - set(self.keys))
        if new or not self.path.is_file():
            old = []
            if self.path.is_file():
                with open(self.path, newline="") as handle:
                    old = list(csv.DictReader(handle))
            self.keys = sorted({*self.keys, *new})
            self._write(old + self.metrics, "w")
        else:
            self._write(self.metrics, "a")
        self.metrics = []

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        with open(self.path, mode, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.keys)
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)


class StageCSVLogger(CSVLogger):
    """Lightning's CSV logger writing through :class:`StageWriter` into ``log_dir`` itself (the stage's artifact
    directory): Lightning's own writer would delete an existing ``metrics.csv`` and warn about the stage's other
    files."""

    def __init__(self, log_dir: Path, resumed_epoch: int | None = None) -> None:
        super().__init__(save_dir=str(log_dir), name="", version="")
        self._resumed_epoch = resumed_epoch

    @property
    @rank_zero_experiment
    def experiment(self) -> StageWriter:
        if self._experiment is None:
            Path(self.log_dir).mkdir(parents=True, exist_ok=True)
            self._experiment = StageWriter(Path(self.log_dir), self._resumed_epoch)
        return self._experiment


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
    settings: Settings,
    cell: dict[str, Any],
    group: str,
    stage: str,
    log_dir: Path,
    wandb_dir: Path | None = None,
    resumed_epoch: int | None = None,
) -> list[Logger]:
    """CSV always (``log_dir/metrics.csv``, keeping the epochs up to ``resumed_epoch`` of a resumed stage); W&B when
    ``logger.wandb`` is set (:func:`wandb_logger`, files under ``wandb_dir``; default ``log_dir``)."""
    loggers: list[Logger] = [StageCSVLogger(log_dir, resumed_epoch)]
    if settings.logger.wandb is not None:
        loggers.append(wandb_logger(settings, cell, group, stage, wandb_dir or log_dir))
    return loggers


def wandb_logger(
    settings: Settings, cell: dict[str, Any], group: str, stage: str, save_dir: Path, extra_tags: tuple[str, ...] = ()
) -> WandbLogger:
    """The W&B run of a stage (``logger.wandb`` must be set): ``group`` = the cell of a table (dataset/model/pruner
    setting/schedule), job_type = stage, name ``<group>/seed<seed>/<stage>``, tags = ``logger.wandb.tags`` + the
    experiment + ``extra_tags``, files under ``save_dir`` (the cell's run directory)."""
    wandb = settings.logger.wandb
    assert wandb is not None
    return QuietWandbLogger(
        project=wandb.project,
        entity=wandb.entity,
        group=group,
        job_type=stage,
        name=f"{group}/seed{cell['seed']}/{stage}",
        tags=list(wandb.tags) + experiment_tags() + list(extra_tags),
        save_dir=str(save_dir),
        mode=wandb_mode(wandb.mode),
        config=settings.config(),
    )


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


REUSED = "reused"  # the W&B tag (and summary field) of a run whose stage came from the artifact store


def log_reused(
    settings: Settings,
    cell: dict[str, Any],
    group: str,
    stage: str,
    stored: Path,
    values: dict[str, Any],
    run_dir: Path,
) -> None:
    """A stage reused from the store (``stored``, its artifact) trains nothing. With ``logger=wandb`` it is still a
    W&B run, named and grouped as its trained run was, tagged ``reused``, whose summary holds the stored results
    ``values`` (``final/*``, as :func:`summarize` writes them) with ``reused: true`` and ``reused_from``; one console
    line says so. With the CSV logger alone it stays silent: the stored ``metrics.csv`` is the stage's log."""
    if settings.logger.wandb is None or is_distributed_follower():
        return
    logger = wandb_logger(settings, cell, group, stage, run_dir, (REUSED,))
    try:
        summarize([logger], values)
        logger.experiment.summary.update({REUSED: True, "reused_from": str(stored)})
    finally:
        finish(settings, [logger])
    print(
        f"rethink: stage {stage} reused from the store ({stored}): logged to W&B as a run tagged '{REUSED}' with "
        "its stored results; nothing was trained or recomputed",
        file=sys.stderr,
        flush=True,
    )
