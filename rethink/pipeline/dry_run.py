"""A sweep's dry run (``python -m rethink.main -m ... dry_run=true``): a Hydra callback plans every cell in this
process before any job is launched and prints a table — cell, params and FLOPs of its final model, its stages with
their epochs, which of them the artifact store already holds — and the totals: training epochs, training FLOPs and
device-hours on a reference device (:mod:`rethink.pipeline.estimate`). ``dry_run=json`` prints one JSON document
instead: every cell's plan and stage estimates, and the totals. Nothing is written, no sweep folder either; the exit
status is 2 when a cell cannot be planned (its error is listed).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import Any

from hydra import compose
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rethink.arch.cost import counted_flops
from rethink.errors import UserError
from rethink.pipeline.config import load_settings
from rethink.pipeline.estimate import REFERENCE_DEVICE, StageEstimate, Totals, totals
from rethink.pipeline.jobs import sweep_jobs
from rethink.pipeline.plan import CellPlan
from rethink.pipeline.tasks import cell_estimates, cell_plan


@dataclass(frozen=True)
class PlannedCell:
    """One job of the sweep: its overrides and either its plan and stage estimates or the error planning it met."""

    job: int
    overrides: list[str]
    plan: CellPlan | None = None
    stages: list[StageEstimate] | None = None
    error: str | None = None


def plan_cell(config_name: str | None, hydra_overrides: list[str], job: int, overrides: list[str]) -> PlannedCell:
    """Compose the job's config (as its launcher would), validate and plan it."""
    try:
        plan = cell_plan(load_settings(compose(config_name=config_name, overrides=hydra_overrides + overrides)))
    except (UserError, HydraException) as exc:
        return PlannedCell(job, overrides, error=str(exc).replace("\n", " "))
    return PlannedCell(job, overrides, plan, cell_estimates(plan))


def _count(value: float) -> str:
    """``853K``, ``1.73M``, ``254M``, ``3.62G``: three significant digits, or whole units from 100 on."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}" if value < 100 * size else f"{value / size:.0f}{unit}"
    return f"{value:.0f}"


def _row(cell: PlannedCell, common: set[str]) -> list[str]:
    if cell.plan is None:  # named by what tells it from the other cells; its error is listed below the table
        swept = " ".join(o for o in cell.overrides if o not in common)
        return [str(cell.job), swept, "", "", "cannot be planned (below)", "", ""]
    plan = cell.plan
    label = f"{plan.group_label()} seed={plan.cell['seed']}"
    decided = plan.retrain.model == "large" or plan.pruned is not None  # else: at most the large model's
    cost = plan.cost(plan.retrain.model if decided else "large")
    if plan.detection is not None:  # the detector's backbone at the detection input size
        backbone = plan.detection.final_backbone
        decided = backbone is not None
        cost = plan.detection.backbone_cost(backbone or plan.large)
    bound = "" if decided else "≤"
    params, flops = bound + _count(cost["params"]), bound + _count(counted_flops(cost["flops"]))
    stages, stored = [], []
    for estimate in cell.stages or []:
        if estimate.epochs == 0 and estimate.stage == "pretrain":
            stages.append(
                "pretrain (imported)" if (plan.imported() or {}).get("found") else "pretrain (import missing)"
            )
        elif estimate.epochs == 0:
            stages.append(estimate.stage)
        else:
            stages.append(f"{estimate.stage} {'?' if estimate.epochs is None else estimate.epochs}")
        if estimate.stored:
            stored.append(estimate.stage)
    everything = stored and len(stored) == len(cell.stages or [])
    stored_text = "all" if everything else ", ".join(stored) or "-"
    return [str(cell.job), label, params, flops, " > ".join(stages), stored_text, cost["flops"]["convention"]]


def _table(rows: list[list[str]]) -> str:
    """The cells' table; a column "FLOPs by" names each cell's counting convention where not all are the paper's."""
    header = ["job", "cell", "params", "FLOPs", "stages (epochs)", "stored", "FLOPs by"]
    if all(row[-1] in ("paper", "") for row in rows):
        header, rows = header[:-1], [row[:-1] for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {0, 2, 3}
    lines = []
    for row in [header, *rows]:
        cells = [text.rjust(w) if i in right else text.ljust(w) for i, (text, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _hours(hours: float) -> str:
    return f"{hours:,.1f} device-hours" if hours >= 0.1 else f"{hours * 3600:.2g} device-seconds"


def summary(total: Totals, conventions: tuple[str, ...] = ("paper",)) -> list[str]:
    """The totals as lines: ``total: ...`` (epochs, FLOPs, device-hours), ``stored: ...`` and any caveats."""
    counted = " / ".join(conventions)
    lines = [
        f"total: {total.cells} cells, {total.stages} training stages (stages shared by cells counted once), "
        f"{total.epochs:,} epochs, {total.train_flops:.3g} training FLOPs = {_hours(total.device_hours)} on "
        f"{REFERENCE_DEVICE} (epochs x 3 x FLOPs/image ({counted} convention) x train images)",
        f"stored: {total.stored} of {total.stages} training stages; to compute: {_hours(total.to_compute_hours)}",
    ]
    if total.undecided:
        lines.append(f"not counted: {total.undecided} training stages whose epochs training decides (Scratch-B)")
    if total.upper_bound:
        lines.append("upper bound (≤): pruned models that training decides are counted at the large model's FLOPs")
    if total.unplanned:
        lines.append(f"{total.unplanned} cells cannot be planned (their errors are listed above)")
    return lines


def procedures(cells: list[PlannedCell]) -> list[str]:
    """One line per distinct way a pruner of the sweep runs: its procedure and, reading data, its calibration
    images (``thinet: 100,000 samples per layer, 10 positions per image; ...; calibration: 10 images of every class
    (10,000)``)."""
    lines: dict[str, None] = {}
    for cell in cells:
        if cell.plan is None or (procedure := cell.plan.pruner.procedure()) is None:
            continue
        line = f"{cell.plan.pruner.name}: {procedure}"
        if cell.plan.pruner.requirements().calibration:
            calibration, dataset = cell.plan.settings.calibration, cell.plan.settings.dataset
            images = calibration.images(dataset.batch_size, dataset.num_classes)
            line += "; calibration: " + (
                f"{calibration.batches} batches ({images:,} images)"
                if calibration.images_per_class is None
                else f"{calibration.images_per_class} images of every class ({images:,})"
            )
        lines[line] = None
    return list(lines)


def render(cells: list[PlannedCell], sweep_dir: str) -> str:
    """The dry run for people: the table of cells, the errors of cells that cannot be planned, the totals."""
    common = set(cells[0].overrides).intersection(*(c.overrides for c in cells[1:])) if cells else set()
    errors: dict[str, list[str]] = {}
    for cell in cells:
        if cell.error:
            errors.setdefault(cell.error, []).append(str(cell.job))
    listed = [f"job{'s' * (len(jobs) > 1)} {', '.join(jobs)}: error: {error}" for error, jobs in errors.items()]
    missing = {i["file"]: i["error"] for c in cells if c.plan and (i := c.plan.imported()) and not i["found"]}
    listed += [f"missing: {error}" for error in missing.values()]  # the file a pretrain stage imports, and the fix
    conventions = tuple(sorted({c.plan.cost("large")["flops"]["convention"] for c in cells if c.plan})) or ("paper",)
    lines = [_table([_row(c, common) for c in cells]), *procedures(cells), *listed]
    lines += summary(totals(c.stages for c in cells), conventions)
    lines.append(f"sweep folder: {sweep_dir} (a run writes there; this dry run wrote nothing)")
    return "\n".join(lines)


def document(cells: list[PlannedCell], sweep_dir: str) -> dict[str, Any]:
    """The dry run as one JSON document: each cell's overrides, plan and stage estimates (or error), the totals."""

    def entry(cell: PlannedCell) -> dict[str, Any]:
        base: dict[str, Any] = {"job": cell.job, "overrides": cell.overrides}
        if cell.plan is None:
            return {**base, "error": cell.error}
        stages = [{**dataclasses.asdict(e), "train_flops": e.train_flops} for e in cell.stages or []]
        return {**base, "plan": cell.plan.to_dict(), "stages": stages}

    return {
        "sweep_dir": sweep_dir,
        "cells": [entry(c) for c in cells],
        "totals": totals(c.stages for c in cells).to_dict(),
    }


class SweepDryRun(Callback):
    """Hydra callback: with ``dry_run`` set, plan the sweep's cells and print them instead of launching any job."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mode = config.get("dry_run")
        if not mode:
            return
        jobs = sweep_jobs(config)
        if jobs is None:
            print(
                "rethink: this sweeper's cells are not known before it runs: each cell prints its plan as its job runs",
                file=sys.stderr,
            )
            return
        hydra_overrides = list(config.hydra.overrides.hydra)
        cells = [plan_cell(kwargs.get("config_name"), hydra_overrides, num, job) for num, job in enumerate(jobs)]
        sweep_dir = str(config.hydra.sweep.dir)
        print(json.dumps(document(cells, sweep_dir), indent=2) if mode == "json" else render(cells, sweep_dir))
        sys.exit(2 if any(c.error for c in cells) else 0)
