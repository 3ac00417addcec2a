"""Run one cell: load data, train each stage of the plan with Lightning, write ``result.json`` in the run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger

from rethink.data import build_datamodule
from rethink.errors import UserError
from rethink.io import write_json_atomic, write_text_atomic
from rethink.lit_module import ClassificationModule
from rethink.plan import CellPlan, StagePlan, build_plan
from rethink.provenance import git_sha, versions


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


def make_loggers(cfg: DictConfig, plan: CellPlan, stage: StagePlan, run_dir: Path) -> list[Logger]:
    """CSV always (``metrics.csv`` per stage); W&B when ``logger.wandb`` is set, grouped by cell, job_type = stage."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version=stage.name)]
    wandb_cfg = cfg.logger.get("wandb")
    if wandb_cfg:
        from pytorch_lightning.loggers import WandbLogger

        c = plan.cell
        group = f"{c['dataset']}/{c['model']}/{c['pruner']}/{c['schedule']}"
        loggers.append(
            WandbLogger(
                project=wandb_cfg.project,
                entity=wandb_cfg.entity,
                group=group,
                job_type=stage.name,
                name=f"{group}/seed{c['seed']}/{stage.name}",
                tags=list(wandb_cfg.tags),
                save_dir=str(run_dir),
                mode=wandb_mode(wandb_cfg.mode),
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        )
    return loggers


def make_trainer(cfg: DictConfig, stage: StagePlan, loggers: list[Logger], run_dir: Path) -> pl.Trainer:
    """A Trainer for one stage; the data modules shard data themselves, so Lightning must not add samplers."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    try:
        return pl.Trainer(
            **kwargs,
            max_epochs=stage.epochs,
            logger=loggers,
            default_root_dir=str(run_dir),
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"trainer config: {exc}. Check the trainer.* overrides.") from None


def train_stage(
    cfg: DictConfig, plan: CellPlan, stage: StagePlan, datamodule: pl.LightningDataModule, run_dir: Path
) -> tuple[ClassificationModule, dict[str, Any], pl.Trainer]:
    """Fit one stage on a freshly built, seeded model; return it with its accuracies (percent)."""
    pl.seed_everything(plan.cell["seed"], workers=True, verbose=False)
    module = ClassificationModule(
        plan.specs[stage.model].to_dict(),
        lr=stage.lr,
        milestones=stage.milestones,
        lr_gamma=stage.lr_gamma,
        momentum=stage.momentum,
        weight_decay=stage.weight_decay,
        nesterov=stage.nesterov,
        top5=plan.cell["dataset"] == "imagenet",
    )
    loggers = make_loggers(cfg, plan, stage, run_dir)
    trainer = make_trainer(cfg, stage, loggers, run_dir)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        for logger in loggers:
            logger.finalize("success")
        if cfg.logger.get("wandb"):
            import wandb

            wandb.finish()
    accuracy: dict[str, Any] = {"unit": "percent"}
    for name in module.best:
        accuracy[f"{name}_final"] = round(100 * module.last[name], 4)
        accuracy[f"{name}_best"] = round(100 * module.best[name], 4)
    return module, accuracy, trainer


def run_cell(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train the cell described by ``cfg`` and write ``result.json`` (and the final weights) under ``run_dir``."""
    plan = build_plan(cfg)
    datamodule = build_datamodule(cfg.dataset, plan.cell["seed"])
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    final_stage = plan.stages[-1]
    accuracy: dict[str, Any] = {}
    trainer: pl.Trainer | None = None
    for stage in plan.stages:
        module, accuracy, trainer = train_stage(cfg, plan, stage, datamodule, run_dir)
    wall_time_s = time.perf_counter() - start
    cost = plan.cost(final_stage.model)
    result = {
        "cell": plan.cell,
        "params": cost["params"],
        "flops": cost["flops"],
        "accuracy": accuracy,
        "epochs": final_stage.epochs,
        "stages": [{"name": s.name, "epochs": s.epochs, "milestones": s.milestones, "lr": s.lr} for s in plan.stages],
        "wall_time_s": round(wall_time_s, 3),
        "git_sha": git_sha(),
        "versions": versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer is None or trainer.is_global_zero:
        write_text_atomic(run_dir / "spec.json", plan.specs[final_stage.model].to_json() + "\n")
        torch.save(module.model.state_dict(), run_dir / "weights.pt")
        write_json_atomic(run_dir / "result.json", result)
    return result
