"""The optimisation of one stage (:class:`Recipe`) and how it follows from the settings (docs/protocol.md#recipes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rethink.errors import UserError
from rethink.rounding import floor
from rethink.settings.schema import OptimSettings, PretrainSettings


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and a multi-step LR for ``epochs`` epochs."""

    epochs: int
    lr: float
    milestones: list[int]
    lr_gamma: float
    momentum: float
    weight_decay: float
    nesterov: bool


def milestones_for(epochs: int, explicit: Sequence[int] | None, fractions: Sequence[float]) -> list[int]:
    """Explicit LR-drop epochs, or ``int(epochs * f)`` for each fraction of the data set's recipe."""
    if explicit is not None:
        return sorted(set(explicit))
    return sorted({floor(epochs * f) for f in fractions} - {0})  # int() as the reference code


def make_recipe(
    prefix: str,
    epochs: int,
    lr: float,
    milestones: Sequence[int] | None,
    fractions: Sequence[float],
    optim: OptimSettings,
) -> Recipe:
    """A recipe whose LR drops are explicit or fractions of ``epochs``; every drop must fall within the run."""
    chosen = milestones_for(epochs, milestones, fractions)
    if any(m > epochs for m in chosen):
        raise UserError(f"{prefix}.milestones={chosen}: every LR drop must fall within the {epochs} epochs.")
    return Recipe(
        epochs=epochs,
        lr=lr,
        milestones=chosen,
        lr_gamma=optim.lr_gamma,
        momentum=optim.momentum,
        weight_decay=optim.weight_decay,
        nesterov=optim.nesterov,
    )


def pretrain_recipe(pretrain: PretrainSettings, fractions: Sequence[float], optim: OptimSettings) -> Recipe:
    """The large model's recipe: ``pretrain.*`` with the data set's milestone fractions."""
    return make_recipe("pretrain", pretrain.epochs, pretrain.lr, pretrain.milestones, fractions, optim)


def rewound(pretrain: Recipe, epochs: int) -> Recipe:
    """The last ``epochs`` epochs of the pretrain LR schedule (Renda et al. 2020), as a recipe of its own."""
    if epochs > pretrain.epochs:
        raise UserError(
            f"schedule.epochs={epochs}: lr_rewind replays the last epochs of the {pretrain.epochs}-epoch pretrain "
            f"schedule, so it must be <= {pretrain.epochs}."
        )
    start = pretrain.epochs - epochs
    drops_before = sum(m <= start for m in pretrain.milestones)
    return Recipe(
        epochs=epochs,
        lr=float(f"{pretrain.lr * pretrain.lr_gamma**drops_before:.12g}"),
        milestones=[m - start for m in pretrain.milestones if m > start],
        lr_gamma=pretrain.lr_gamma,
        momentum=pretrain.momentum,
        weight_decay=pretrain.weight_decay,
        nesterov=pretrain.nesterov,
    )
