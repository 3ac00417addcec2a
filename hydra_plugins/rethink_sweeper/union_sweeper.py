"""``hydra/sweeper=rethink_union`` (conf/hydra/sweeper/rethink_union.yaml): Hydra's basic sweeper over a union of
cartesian products. ``params`` is swept as the basic sweeper sweeps it; every entry of ``union`` is a further product,
of ``params`` with the entry's keys replaced; a job in two products runs once (rethink/pipeline/jobs.py, docs/sweeps.md
"Unions of sweeps")."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from rethink.errors import UserError
from rethink.pipeline.jobs import parse_union, union_entries


class UnionSweeper(BasicSweeper):
    """The basic sweeper with ``union``: further cartesian products whose jobs join the sweep after its own."""

    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None, union: Any = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.union = union_entries(union)
        self.task: list[str] = []

    def sweep(self, arguments: list[str]) -> Any:
        self.task = list(arguments)
        return super().sweep(arguments)

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        """The jobs of every product, each once, in batches of ``max_batch_size`` (the parsed ``overrides`` of
        ``params`` and the command line are parsed again from their sources, to tell the command line apart)."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        try:
            jobs = parse_union(parser, self.params, self.union, self.task)
        except UserError as exc:
            print(f"rethink: error: {exc}", file=sys.stderr)
            sys.exit(2)
        batches: Iterable[list[list[str]]] = self.split_overrides_to_chunks(jobs, max_batch_size)
        return list(batches)
