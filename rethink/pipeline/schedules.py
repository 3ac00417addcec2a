"""Retraining schedules (``schedule=<name>``): each option's settings schema and the recipe it gives the retraining
stage (docs/protocol.md#cell, #scratch-b).

``baseline`` trains the unpruned model only; every other schedule retrains the pruned one, starting from the
pruned model's inherited weights (``init: pretrained``), a fresh initialisation (``random``) or the large model's
original initialisation cut to the pruned architecture (``original``, lottery tickets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rethink.errors import UserError
from rethink.pipeline.budget import Budget, scratch_b_budget, stretch_stages
from rethink.settings.schema import FRESH, INHERITED, Init, OptimSettings, ScheduleSettings
from rethink.settings.typed import NonNegativeInt, PositiveFloat, PositiveInt
from rethink.training.recipes import Recipe, make_recipe, rewound


@dataclass(frozen=True)
class Schedule(ScheduleSettings):
    """A schedule option: its settings and the recipe it gives the retraining stage."""

    def retrain_recipe(
        self, pretrain: Recipe, optim: OptimSettings, flops_ratio: float | None, stretch: bool
    ) -> tuple[Recipe | None, Budget | None]:
        """The retraining recipe (None: it depends on the pruned model, not decided yet) and the Scratch-B budget.

        ``flops_ratio``: FLOPs(large) / FLOPs(pruned) when the pruned model is known; ``stretch``: the pruner's
        Scratch-B stretches every LR stage (SSS) instead of scaling the epochs."""
        raise NotImplementedError(f"schedule '{self.name}' trains no pruned model")


@dataclass(frozen=True)
class BaselineSchedule(Schedule):
    """The unpruned model, trained with ``pretrain.*``: nothing to retrain."""


@dataclass(frozen=True)
class RetrainSchedule(Schedule):
    """A fixed recipe: ``epochs`` at ``lr``, dropping at ``milestones`` (None: the fractions of the epochs)."""

    init: Init = INHERITED
    epochs: PositiveInt = 40
    lr: PositiveFloat = 0.001
    milestones: list[NonNegativeInt] | None = None
    milestone_fractions: list[float] = field(default_factory=list)

    def retrain_recipe(
        self, pretrain: Recipe, optim: OptimSettings, flops_ratio: float | None, stretch: bool
    ) -> tuple[Recipe | None, Budget | None]:
        recipe = make_recipe("schedule", self.epochs, self.lr, self.milestones, self.milestone_fractions, optim)
        return recipe, None


@dataclass(frozen=True)
class ScratchBSchedule(Schedule):
    """Scratch-B: a fresh model trained for ``int(base_epochs x FLOPs(large) / FLOPs(pruned))`` epochs (at most
    ``base_epochs x cap``), LR drops by ``milestone_rule``; ``epochs`` / ``milestones`` override the rule."""

    init: Init = FRESH
    base_epochs: PositiveInt = 160
    cap: PositiveFloat | None = None
    epochs: PositiveInt | None = None
    lr: PositiveFloat = 0.1
    milestones: list[NonNegativeInt] | None = None
    milestone_fractions: list[float] = field(default_factory=list)
    milestone_rule: Literal["fraction", "step"] = "fraction"

    def retrain_recipe(
        self, pretrain: Recipe, optim: OptimSettings, flops_ratio: float | None, stretch: bool
    ) -> tuple[Recipe | None, Budget | None]:
        if flops_ratio is None:
            return None, None
        fractions = self.milestone_fractions
        if stretch:
            budget = stretch_stages(pretrain.milestones, self.base_epochs, flops_ratio)
        else:
            budget = scratch_b_budget(self.base_epochs, flops_ratio, fractions, self.cap, self.milestone_rule)
        epochs = self.epochs or budget.epochs
        milestones = self.milestones
        if milestones is None and epochs == budget.epochs:
            milestones = budget.milestones
        return make_recipe("schedule", epochs, self.lr, milestones, fractions, optim), budget


@dataclass(frozen=True)
class LrRewindSchedule(Schedule):
    """Learning-rate rewinding: inherited weights retrained with the last ``epochs`` of the large model's schedule."""

    init: Init = INHERITED
    epochs: PositiveInt = 40

    def retrain_recipe(
        self, pretrain: Recipe, optim: OptimSettings, flops_ratio: float | None, stretch: bool
    ) -> tuple[Recipe | None, Budget | None]:
        return rewound(pretrain, self.epochs), None


SCHEDULES: dict[str, type[Schedule]] = {
    "baseline": BaselineSchedule,
    "finetune": RetrainSchedule,
    "scratch_e": RetrainSchedule,
    "scratch_b": ScratchBSchedule,
    "finetune_restart": RetrainSchedule,
    "finetune_restart_full": RetrainSchedule,
    "lottery": RetrainSchedule,
    "lr_rewind": LrRewindSchedule,
}


def schedule_schema(name: object) -> type[Schedule]:
    """The settings schema of schedule ``name``, or a :class:`UserError` listing the schedules."""
    if name not in SCHEDULES:
        raise UserError(
            f"schedule.name={name!r} ({type(name).__name__}) is not known; accepted: {', '.join(SCHEDULES)}."
        )
    return SCHEDULES[name]
