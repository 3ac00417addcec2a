"""``task=detection`` registered with the pipeline: its settings schema, its plan, its dry-run estimates and its
run (imported by :mod:`rethink.detection`, which the entry point imports)."""

from __future__ import annotations

from rethink.detection.estimate import detection_estimates
from rethink.detection.plan import plan_detection
from rethink.detection.result import run_detection_cell
from rethink.detection.settings import DetectionSettings
from rethink.pipeline.tasks import Task, register_task
from rethink.settings.tasks import register_task_settings

register_task_settings(DetectionSettings)
register_task("detection", Task(plan_detection, detection_estimates, run_detection_cell))
