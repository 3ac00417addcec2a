"""The schemas of the ``task`` group's options: ``classification`` here, others registered by their package
(``task=detection``: :mod:`rethink.detection`, registered when it is imported, as the entry point does)."""

from __future__ import annotations

from rethink.settings.schema import TaskSettings

TASK_SCHEMAS: dict[str, type[TaskSettings]] = {"classification": TaskSettings}


def register_schema(name: str, schema: type[TaskSettings]) -> None:
    """Make ``task=<name>`` parse into ``schema``."""
    TASK_SCHEMAS[name] = schema
