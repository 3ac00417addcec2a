"""Pruning in a Lightning callback, at the stage boundary: the prune stage is a Lightning run (``Trainer.validate``)
of the trained model, and :class:`PruningCallback` decides in its ``setup`` — before the network moves to its device
— with the run's data module (calibration batches) and strategy at hand. Under DDP the decision is made once, on
rank 0, and broadcast with ``trainer.strategy``; every rank installs the pruned network, which the run then
evaluates (the accuracy right after pruning, before any retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
from torch import nn

from rethink.distributed import all_ranks
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision, state_digest
from rethink.pruning.registry import Pruner


class PruningCallback(pl.Callback):
    """Asks ``pruner`` for its decision on the run's network and installs the pruned network in its place.

    ``context_of(network, trainer)`` makes the decision's context from the run's network and trainer. Rank 0 writes
    the decision's files into ``out_dir``; afterwards ``decision`` holds it on every rank, ``files`` the names
    written, and ``installed`` the sha256 of the pruned weights each rank installed.
    """

    def __init__(
        self, pruner: Pruner, context_of: Callable[[nn.Module, pl.Trainer], PruneContext], out_dir: Path
    ) -> None:
        super().__init__()
        self.pruner, self.context_of, self.out_dir = pruner, context_of, out_dir
        self.decision: Decision | None = None
        self.files: list[str] = []
        self.installed: list[str] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        decision = None
        if trainer.is_global_zero:
            decision = self.pruner.decide(self.context_of(pl_module.model, trainer))
            self.files = decision.save(self.out_dir)
        self.decision = trainer.strategy.broadcast(decision, src=0)
        pl_module.install(self.decision.spec, self.decision.state)
        self.installed = all_ranks(state_digest(pl_module.model.state_dict()))
