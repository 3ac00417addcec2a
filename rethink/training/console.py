"""What a run prints besides its results: Lightning's own info lines and known library noise are hidden unless
``verbose=true``; warnings and errors still show."""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")

# Warnings that say nothing about the run: the library's own deprecations and advice that does not apply.
NOISE = (
    # pytorch_lightning's _pytree calls an API torch deprecated; nothing a user can change
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # quick runs have fewer batches per epoch than trainer.log_every_n_steps; metrics.csv keeps the epoch values
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # DDP: Lightning's advice to reduce over the processes values that torchmetrics has already reduced
    r"It is recommended to use `self.log\('(test/top[15](_best)?|train/top1|train/loss_epoch)', "
    r"\.\.\., sync_dist=True\)`",
)


def quiet_lightning(verbose: bool) -> None:
    """Show Lightning's info lines (accelerator, ``limit_*_batches``, tips, "``fit`` stopped") and the library noise
    of :data:`NOISE` only when ``verbose``; everything at warning level or above still shows."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for message in NOISE:
        warnings.filterwarnings("default" if verbose else "ignore", message=message)
