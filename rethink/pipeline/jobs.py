"""The jobs of a Hydra multirun, known before it runs (the basic sweeper's expansion of its sweep parameters)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job of a multirun, in job-number order, as Hydra's basic sweeper expands them (None for
    other sweepers, whose jobs are not known in advance)."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_") or ""
    if not sweeper.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.params
    params = {} if params is None else OmegaConf.to_container(params, resolve=False)
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    try:
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    except Exception:  # e.g. glob() sweeps need Hydra's config loader: the count is only shown, the sweep goes on
        return None
    return [job for batch in batches for job in batch]
