"""The jobs of a Hydra multirun, known before it runs: the basic sweeper's cartesian product of its sweep parameters,
or the union sweeper's (``hydra/sweeper=rethink_union``) products, each job once."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from rethink.errors import UserError

UNION_SWEEPER = "hydra_plugins.rethink_sweeper.union_sweeper.UnionSweeper"


def _arguments(params: Mapping[str, Any] | None) -> list[str]:
    return [f"{key}={value}" for key, value in (params or {}).items()]


def _values(override: Override) -> list[str]:
    """The values an override gives its key, as the basic sweeper spells them."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        raise UserError(
            f"{override.input_line}: a sweep needs a list of values (a,b,c or range(...)), not an interval; "
            "an interval is for sweepers that sample (e.g. Optuna)"
        )
    return list(override.sweep_string_iterator())


def _product(axes: dict[str, tuple[str, list[str]]]) -> list[list[str]]:
    lists = [[f"{spelling}={value}" for value in values] for spelling, values in axes.values()]
    return [list(job) for job in itertools.product(*lists)]


def _axes(overrides: Sequence[Override]) -> dict[str, tuple[str, list[str]]]:
    """Key -> (the key as written, its values); a later override of a key replaces an earlier one, as in Hydra."""
    return {o.key_or_group: (o.get_key_element(), _values(o)) for o in overrides}


def union_jobs(
    params: Sequence[Override], union: Sequence[Sequence[Override]], task: Sequence[Override]
) -> list[list[str]]:
    """The overrides of every job, in job-number order: the cartesian product of ``params`` with the command line's
    ``task`` overrides (which replace the keys they name, as in Hydra's basic sweeper), then, for each entry of
    ``union``, the product of ``params`` with the entry's keys replaced. A command-line override of a key an entry
    sets selects among the entry's values (an entry none of whose values it names adds no job), so a command line
    that narrows the sweep narrows every part of it. A job that an earlier part already has is not repeated."""
    given = _axes(task)
    parts = [{**_axes(params), **given}]
    for entry in union:
        replaced = _axes(entry)
        axes = {**_axes(params), **replaced}
        for key, (spelling, values) in given.items():
            if key in replaced:
                axes[key] = (axes[key][0], [v for v in axes[key][1] if v in values])
            else:
                axes[key] = (spelling, values)
        parts.append(axes)
    jobs, seen = [], set()
    for axes in parts:
        for job in _product(axes):
            identity = frozenset(override.lstrip("+") for override in job)
            if identity not in seen:
                seen.add(identity)
                jobs.append(job)
    return jobs


def union_entries(union: Any) -> list[Mapping[str, Any]]:
    """A sweeper's ``union`` (a config node, a list or None) as a list of mappings; a clear error for anything else."""
    plain = OmegaConf.to_container(union, resolve=False) if OmegaConf.is_config(union) else (union or [])
    if not isinstance(plain, list) or not all(isinstance(entry, Mapping) for entry in plain):
        raise UserError(
            f"hydra.sweeper.union: {plain!r} is not a list of sweeps; each entry maps sweep keys to values as "
            "hydra.sweeper.params does (e.g. union: [{dataset: cifar100, seed: '1,2'}])"
        )
    return plain


def parse_union(parser: OverridesParser, params: Any, union: Any, task: Sequence[str]) -> list[list[str]]:
    """:func:`union_jobs` of a sweeper's ``params`` and ``union`` (config nodes or plain containers) and the command
    line's overrides, parsed by ``parser``."""
    params = OmegaConf.to_container(params, resolve=False) if OmegaConf.is_config(params) else params
    return union_jobs(
        parser.parse_overrides(_arguments(params)),
        [parser.parse_overrides(_arguments(entry)) for entry in union_entries(union)],
        parser.parse_overrides(list(task)),
    )


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job of a multirun, in job-number order, as Hydra's basic sweeper or the union sweeper
    expands them (None for other sweepers, whose jobs are not known in advance)."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_") or ""
    if not sweeper.endswith("BasicSweeper") and sweeper != UNION_SWEEPER:
        return None
    union = OmegaConf.select(config, "hydra.sweeper.union") if sweeper == UNION_SWEEPER else None
    try:
        return parse_union(OverridesParser.create(), config.hydra.sweeper.params, union, config.hydra.overrides.task)
    except Exception:  # e.g. glob() sweeps need Hydra's config loader: the count is only shown, the sweep goes on
        return None
