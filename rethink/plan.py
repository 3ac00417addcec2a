"""Resolve a composed config into the plan of a cell: validated names and numbers, model specs, costs and stages.

Everything here runs before any data is loaded or any training starts, so bad input fails fast and ``dry_run``
can print the plan without touching data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import DictConfig

from rethink import validate as v
from rethink.arch import INPUT_SIZE, ArchSpec, UnknownModelError, default_spec, model_info
from rethink.cost import spec_cost
from rethink.data import DATASETS
from rethink.errors import UserError

DOMAIN_NAMES = {"cifar": "a CIFAR", "imagenet": "an ImageNet"}
PRUNERS = ("none",)
SCHEDULES = ("baseline",)


@dataclass(frozen=True)
class StagePlan:
    """One ``Trainer.fit``: which model it trains and with which recipe."""

    name: str
    model: str
    epochs: int
    lr: float
    milestones: list[int]
    lr_gamma: float
    momentum: float
    weight_decay: float
    nesterov: bool


@dataclass
class CellPlan:
    """A resolved cell: its identity, the specs and costs of its models, and its stages in order."""

    cell: dict[str, Any]
    specs: dict[str, ArchSpec]
    stages: list[StagePlan] = field(default_factory=list)
    input_size: int = 32

    def cost(self, model: str) -> dict[str, Any]:
        """Params and FLOPs (MACs and the paper's 2x-MAC convention) of one of the cell's models."""
        c = spec_cost(self.specs[model], self.input_size)
        return {"params": c.params, "flops": {"macs": c.macs, "paper": c.flops}}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``dry_run`` and embedded in ``result.json``."""
        return {
            "cell": self.cell,
            "input_size": self.input_size,
            "models": {name: self.cost(name) for name in self.specs},
            "stages": [asdict(stage) for stage in self.stages],
        }


def milestones_for(epochs: int, explicit: list[int] | None, fractions: list[float]) -> list[int]:
    """Explicit LR-drop epochs, or ``int(epochs * f)`` for each fraction of the data set's recipe."""
    if explicit is not None:
        return sorted(explicit)
    return [int(epochs * f + 1e-9) for f in fractions]  # int() as the reference code; 1e-9 absorbs 90 * (1/3)


def _model_spec(cfg: DictConfig, num_classes: int, image_size: int) -> ArchSpec:
    name = v.get(cfg, "model.name")
    try:
        info = model_info(name)
    except UnknownModelError as exc:
        raise UserError(f"model.name: {exc}. Pick one with model=<name>.") from None
    size = INPUT_SIZE[info.domain]
    if size != image_size:
        raise UserError(
            f"model '{name}' is {DOMAIN_NAMES[info.domain]} architecture for {size}x{size} inputs, but dataset "
            f"'{v.get(cfg, 'dataset.name')}' has {image_size}x{image_size} images. Pick a model for that input size, "
            f"e.g. model={'resnet56' if image_size == 32 else 'resnet50'}."
        )
    options = {k: val for k, val in v.get(cfg, "model").items() if k != "name"}
    try:
        return default_spec(name, num_classes, **options)
    except (TypeError, ValueError) as exc:
        message = str(exc) if str(exc).startswith(f"model '{name}'") else f"model '{name}': {exc}"
        raise UserError(f"{message}. Fix the model.* override (conf/model/{name}.yaml lists the options).") from None


def _train_stage(cfg: DictConfig, name: str, model: str) -> StagePlan:
    epochs = v.positive_int(cfg, "schedule.epochs")
    milestones = milestones_for(
        epochs, v.int_list(cfg, "schedule.milestones"), v.get(cfg, "dataset.recipe.milestone_fractions")
    )
    return StagePlan(
        name=name,
        model=model,
        epochs=epochs,
        lr=v.number(cfg, "schedule.lr"),
        milestones=milestones,
        lr_gamma=v.number(cfg, "schedule.lr_gamma", high=1.0),
        momentum=v.number(cfg, "schedule.momentum", low_inclusive=True, high=1.0),
        weight_decay=v.number(cfg, "schedule.weight_decay", low_inclusive=True),
        nesterov=bool(v.get(cfg, "schedule.nesterov")),
    )


def build_plan(cfg: DictConfig) -> CellPlan:
    """Validate the config and resolve the cell's plan; raises :class:`UserError` on bad input."""
    dataset = v.choice(cfg, "dataset.name", DATASETS)
    num_classes = v.positive_int(cfg, "dataset.num_classes")
    image_size = v.positive_int(cfg, "dataset.image_size")
    v.positive_int(cfg, "dataset.batch_size")
    v.positive_int(cfg, "dataset.test_batch_size")
    v.positive_int(cfg, "dataset.train_subset", allow_none=True)
    v.positive_int(cfg, "dataset.test_subset", allow_none=True)
    seed = v.positive_int(cfg, "seed", allow_zero=True)
    pruner = v.choice(cfg, "pruner.name", PRUNERS)
    schedule = v.choice(cfg, "schedule.name", SCHEDULES)
    spec = _model_spec(cfg, num_classes, image_size)
    cell = {"dataset": dataset, "model": v.get(cfg, "model.name"), "pruner": pruner, "schedule": schedule, "seed": seed}
    plan = CellPlan(cell=cell, specs={"large": spec}, input_size=image_size)
    plan.stages.append(_train_stage(cfg, "train", "large"))
    return plan
