"""Retraining schedules (``schedule=<name>``): each option is a registered :class:`Schedule` subclass — its
settings (the dataclass fields, the ``name`` field's default naming the option), the recipe it gives the retraining
stage, where the retrained weights start, and its report metadata (title, column order, role in the verdicts, the
settings compared with the paper's protocol) — docs/protocol.md#cell, #scratch-b.

``baseline`` trains the unpruned model only; every other schedule retrains the pruned one, starting from the
pruned model's inherited weights (``init: pretrained``), a fresh initialisation (``random``) or the large model's
original initialisation cut to the pruned architecture (``original``, lottery tickets). A schedule of the user's own
package is a subclass registered with :func:`register_schedule` (its option's ``_target_`` imports it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from rethink.kinds import Kinds, field_default
from rethink.options import offer_defaults
from rethink.pipeline.budget import Budget, scratch_b_budget, stretch_stages
from rethink.settings.schema import FRESH, INHERITED, ORIGINAL, Init, OptimSettings, ScheduleSettings
from rethink.settings.typed import NonNegativeInt, PositiveFloat, PositiveInt
from rethink.training.recipes import Recipe, make_recipe, rewound

Weights = dict[str, Any]  # a state dict


class Start(Protocol):
    """Where a retraining's weights can start, as the runner offers them to :meth:`Schedule.initial_weights`."""

    def inherited(self) -> Weights:
        """The pruned model's weights, inherited from the trained large model."""

    def original(self) -> Weights:
        """The large model's original initialisation, cut as the decision cut the trained model."""

    def fresh(self) -> Weights | None:
        """A fresh initialisation of the pruned model (None: the builder's own, seeded by the stage)."""


# a schedule's role in the verdicts (docs/results.md#verdicts): the unpruned model, the fine-tuned reference, a
# retraining from scratch tested against it, or none
ROLES = ("unpruned", "finetuned", "scratch", None)


@dataclass(frozen=True)
class Schedule(ScheduleSettings):
    """A schedule option: its settings, the recipe it gives the retraining stage, where its weights start and what
    the report shows of it. Subclasses give ``name`` a default (the option's name) and set the class variables."""

    title: ClassVar[str] = ""  # its column's heading in the report (default: the name)
    column_order: ClassVar[int] = 100  # where its column comes in a table (the paper's schedules first)
    role: ClassVar[str | None] = None  # one of ROLES
    # (config path, key of the paper's protocol) a result is compared on (None: the path must be unset), e.g.
    # ("schedule.epochs", "finetune_epochs"); docs/results.md#protocol
    protocol: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    states_recipe: ClassVar[bool] = False  # the report states its recipe under the table (no source confirms it)

    @classmethod
    def record(cls) -> dict[str, Any]:
        """What a result records of this schedule (``options.schedule``), so a report needs no import of it."""
        name = field_default(cls)
        return {
            "name": name,
            "title": cls.title or name,
            "column_order": cls.column_order,
            "role": cls.role,
            "protocol": [list(check) for check in cls.protocol],
            "states_recipe": cls.states_recipe,
        }

    def initial_weights(self, start: Start) -> Weights | None:
        """The weights the retraining starts from (None: a fresh model), by ``init``."""
        return {INHERITED: start.inherited, ORIGINAL: start.original, FRESH: start.fresh}[str(self.init)]()

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


SCHEDULES: Kinds[type[Schedule]] = Kinds("schedule", Schedule, field_default, "rethink.pipeline.schedules.Schedule")


def register_schedule(cls: type[Schedule]) -> type[Schedule]:
    """Class decorator: make ``cls`` the schedule ``schedule=<its name default>`` (offered as a config option when
    every setting has a default and no YAML file defines it)."""
    SCHEDULES.register(cls)
    if not dataclasses.is_dataclass(cls) or cls.role not in ROLES:
        raise TypeError(f"schedule {cls!r}: a frozen dataclass with role in {ROLES}")
    offer_defaults("schedule", field_default(cls), cls, cls)
    return cls


@register_schedule
@dataclass(frozen=True)
class Baseline(BaselineSchedule):
    name: str = "baseline"
    title, column_order, role = "Unpruned", 0, "unpruned"


@register_schedule
@dataclass(frozen=True)
class Finetune(RetrainSchedule):
    name: str = "finetune"
    title, column_order, role = "Fine-tuned", 1, "finetuned"
    protocol = (("schedule.epochs", "finetune_epochs"), ("schedule.lr", "finetune_lr"))


@register_schedule
@dataclass(frozen=True)
class ScratchE(RetrainSchedule):
    name: str = "scratch_e"
    init: Init = FRESH
    title, column_order, role = "Scratch-E", 2, "scratch"
    protocol = (("schedule.epochs", "pretrain_epochs"),)


@register_schedule
@dataclass(frozen=True)
class ScratchB(ScratchBSchedule):
    name: str = "scratch_b"
    title, column_order, role = "Scratch-B", 3, "scratch"
    protocol = (
        ("schedule.base_epochs", "pretrain_epochs"),
        ("schedule.cap", "scratch_b_cap"),
        ("schedule.epochs", None),
    )


@register_schedule
@dataclass(frozen=True)
class FinetuneRestart(RetrainSchedule):
    name: str = "finetune_restart"
    title, column_order, states_recipe = "Fine-tune-restart", 4, True
    protocol = (("schedule.epochs", "finetune_restart_epochs"), ("schedule.lr", "finetune_restart_lr"))


@register_schedule
@dataclass(frozen=True)
class FinetuneRestartFull(RetrainSchedule):
    name: str = "finetune_restart_full"
    title, column_order, states_recipe = "Fine-tune-restart (full schedule)", 5, True


@register_schedule
@dataclass(frozen=True)
class Lottery(RetrainSchedule):
    name: str = "lottery"
    init: Init = ORIGINAL
    title, column_order = "Lottery", 6
    protocol = (("schedule.epochs", "pretrain_epochs"),)


@register_schedule
@dataclass(frozen=True)
class LrRewind(LrRewindSchedule):
    name: str = "lr_rewind"
    title, column_order = "LR-rewind", 7
