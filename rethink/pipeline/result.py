"""Run one cell and write what it produced: ``result.json`` (schema in docs/results.md), the final ``spec.json`` and
``weights.pt``, and each trained stage's per-epoch ``metrics.csv``, in the cell's run directory."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rethink.arch import model_info
from rethink.arch.cost import counted_flops
from rethink.data import build_datamodule
from rethink.distributed import is_distributed_follower
from rethink.io import copy_file_atomic, write_json_atomic, write_text_atomic
from rethink.launch import held_slot
from rethink.pipeline import keys
from rethink.pipeline.plan import CellPlan
from rethink.pipeline.runner import CellRunner
from rethink.pipeline.tasks import cell_plan, planned_task
from rethink.provenance import git_sha, versions
from rethink.pruning.naming import report_record
from rethink.settings.schema import Settings
from rethink.training.speed import speed_record
from rethink.training.trainer import check_accelerator


def _budget(plan: CellPlan) -> dict[str, Any] | None:
    final = plan.retrain
    if final.name != "retrain":
        return None
    large, pruned = plan.cost("large"), plan.cost("pruned")
    return {
        "epochs": final.recipe.epochs,
        "milestones": final.recipe.milestones,
        "flops_ratio": round(counted_flops(large["flops"]) / counted_flops(pruned["flops"]), 6),
        "base_epochs": plan.base_epochs,
        "cap": None if plan.budget is None else plan.budget.cap,
        "capped": plan.budget is not None and plan.budget.capped,
    }


def _batch(records: list[dict[str, Any]]) -> dict[str, int] | None:
    """The global batch, process count and per-process batch of the last trained stage (None: none recorded)."""
    batches = [r["batch"] for r in records if r.get("batch")]
    return batches[-1] if batches else None


def _imported_sha256(records: list[dict[str, Any]]) -> str | None:
    """The content hash of the large model's weights when the pretrain stage imported them (pretrain.weights)."""
    imported = [
        r["imported_from"]
        for r in records
        if r.get("stage") == "pretrain" and "source" not in r and r.get("imported_from")
    ]
    return imported[0]["sha256"] if imported else None


def options_record(plan: CellPlan) -> dict[str, Any]:
    """What a report needs of the cell's options (``options`` of result.json: titles, orders, roles), so a report run
    without the user's package imported still titles and orders its data set, model, pruner and schedule."""
    settings = plan.settings
    info = model_info(plan.model_name)
    return {
        "dataset": type(settings.dataset).record(),
        "model": {"name": info.name, "family": plan.large.family, "title": info.description, **_label(plan)},
        "pruner": report_record(type(plan.pruner)),
        "schedule": type(settings.schedule).record(),
    }


def _label(plan: CellPlan) -> dict[str, str]:
    """``{"label": "torchvision.resnet18"}`` for a model whose cells name the architecture it builds; else {}."""
    info = model_info(plan.model_name)
    return {} if info.label is None else {"label": info.cell_label(plan.settings.model.options)}


def run_cell(settings: Settings, run_dir: Path) -> dict[str, Any]:
    """Run the cell of ``settings``; write ``result.json`` (and the final spec and weights) under ``run_dir``."""
    plan = cell_plan(settings)
    check_accelerator(settings.trainer.arguments)
    datamodule = build_datamodule(plan.settings.dataset, settings.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runner = CellRunner(plan, datamodule, run_dir)
    task = planned_task(plan)
    if task is not None:
        return task.run(runner, run_dir)
    metrics = runner.run()
    plan, final = runner.plan, runner.plan.retrain
    cost = plan.cost(final.model)
    result = {
        "cell": plan.cell,
        "params": cost["params"],
        "flops": cost["flops"],
        "accuracy": metrics["accuracy"],
        "epochs": final.recipe.epochs,
        "recipe": asdict(final.recipe),
        "batch": _batch(runner.records),
        "speed": speed_record(settings.speed, plan.specs[final.model], settings.trainer.arguments),
        "settings": keys.settings_record(plan, _imported_sha256(runner.records)),
        "pruning": plan.pruning_summary(),
        "options": options_record(plan),
        "budget": _budget(plan),
        "stages": runner.records,
        "wall_time_s": round(time.perf_counter() - start, 3),
        "git_sha": git_sha(),
        "versions": versions(),
        "config": settings.config(),
    }
    if held_slot() is not None:  # launch.device_slots: the device slot the job held (rethink.launch)
        result["launch"] = {"device_slot": held_slot(), "device_slots": settings.launch.device_slots}
    if not is_distributed_follower():  # every file replaced atomically: a re-run killed here loses nothing written
        for record in runner.records:  # per-epoch metrics of every trained stage, beside the result
            csv = Path(record["path"] or "/nonexistent") / "metrics.csv"
            if csv.is_file():
                copy_file_atomic(csv, run_dir / record["stage"] / "metrics.csv")
        final_dir = Path(runner.records[-1]["path"])
        write_text_atomic(run_dir / "spec.json", plan.specs[final.model].to_json() + "\n")
        copy_file_atomic(final_dir / "weights.pt", run_dir / "weights.pt")
        write_json_atomic(run_dir / "result.json", result)
    return result
