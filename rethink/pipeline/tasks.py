"""Tasks beyond classification plug in here: a task registers how a cell of it is planned (over its classification
cell), how the dry run estimates its stages and how it runs (:func:`register_task`; ``task=detection`` by
:mod:`rethink.detection`). A classification cell needs none of this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rethink.pipeline.estimate import StageEstimate, stage_estimates
from rethink.pipeline.plan import CellPlan, build_plan
from rethink.pipeline.runner import CellRunner
from rethink.settings.schema import Settings


@dataclass(frozen=True)
class Task:
    """plan: the cell's plan; estimates: its stages for a dry run; run: runs it after building the classification
    cell's runner and writes its result."""

    plan: Callable[[Settings], CellPlan]
    estimates: Callable[[CellPlan], list[StageEstimate]]
    run: Callable[[CellRunner, Path], dict[str, Any]]


TASKS: dict[str, Task] = {}


def register_task(name: str, task: Task) -> None:
    TASKS[name] = task


def task_of(settings: Settings) -> Task | None:
    """The registered task of ``settings`` (None: classification)."""
    return TASKS.get(settings.task.name)


def cell_plan(settings: Settings) -> CellPlan:
    """The plan of the cell of ``settings``; raises :class:`rethink.errors.UserError` on input that does not fit."""
    task = task_of(settings)
    return build_plan(settings) if task is None else task.plan(settings)


def cell_estimates(plan: CellPlan) -> list[StageEstimate]:
    """The stage estimates of a planned cell (a dry run)."""
    task = planned_task(plan)
    return stage_estimates(plan) if task is None else task.estimates(plan)


def planned_task(plan: CellPlan) -> Task | None:
    """The registered task a plan was made by (its cell's ``task``; None: classification)."""
    return TASKS.get(plan.cell.get("task", "classification"))
