"""Pruners: one module each, registered by name (:mod:`rethink.pruning.registry`); the pruning callback decides at a
stage boundary inside a Lightning run (:mod:`rethink.pruning.callback`)."""

from rethink.pruning import (  # noqa: F401  (each registers itself)
    guided,
    guided_sparsity,
    l1,
    magnitude,
    none,
    random,
    regression,
    slimming,
    sss,
    thinet,
    uniform,
    uniform_sparsity,
)
from rethink.pruning.context import CalibrationShape, PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.registry import (
    PRUNERS,
    Curve,
    Needs,
    Pruner,
    PrunerSettings,
    SourceCell,
    SourceModels,
    create,
    lookup,
    pruner_class,
    register,
)

__all__ = [
    "PRUNERS",
    "CalibrationShape",
    "Curve",
    "Decision",
    "Needs",
    "PruneContext",
    "Pruner",
    "PrunerSettings",
    "SourceCell",
    "SourceModels",
    "create",
    "lookup",
    "pruner_class",
    "register",
]
