"""The ``task`` group's options: registered :class:`TaskSettings` subclasses, each naming its option by its ``name``
field's default — ``classification`` here, others registered by their package (``task=detection``:
:mod:`rethink.detection`, registered when it is imported, as the entry point does; an option's ``_target_`` imports
its class). What a task does is registered beside it (:func:`rethink.pipeline.tasks.register_task`)."""

from __future__ import annotations

from rethink.kinds import Kinds, field_default
from rethink.settings.schema import TaskSettings

TASK_KINDS: Kinds[type[TaskSettings]] = Kinds(
    "task", TaskSettings, field_default, "rethink.settings.schema.TaskSettings"
)
TASK_KINDS.register(TaskSettings)


def register_task_settings(cls: type[TaskSettings]) -> type[TaskSettings]:
    """Class decorator: make ``task=<cls's name default>`` parse into ``cls``."""
    return TASK_KINDS.register(cls)
