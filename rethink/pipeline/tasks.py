"""The plan of any cell: a classification cell's (:func:`rethink.pipeline.plan.build_plan`) or, with
``task=detection``, its classification cell's plan carrying the detection stages
(:func:`rethink.detection.plan.plan_detection`)."""

from __future__ import annotations

from rethink.detection.plan import plan_detection
from rethink.pipeline.plan import CellPlan, build_plan
from rethink.settings.schema import Settings


def cell_plan(settings: Settings) -> CellPlan:
    """The plan of the cell of ``settings``; raises :class:`rethink.errors.UserError` on input that does not fit."""
    return plan_detection(settings) if settings.task.name == "detection" else build_plan(settings)
