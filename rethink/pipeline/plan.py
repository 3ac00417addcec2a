"""Settings -> the immutable plan of a cell: the pruner, model specs, costs, stages and recipes.

Everything here runs before any data is loaded or any training starts, so bad input fails fast and ``dry_run``
can print the plan without touching data. A cell walks up to three stages (docs/protocol.md#cell):

    pretrain (large model) -> prune (a decision in a Lightning run) -> retrain (schedule)

``schedule=baseline`` is the pretrain stage alone. Retraining from random init with a predefined target needs no
trained large model: the pruned spec is built directly. An iterative pruner adds a round (``imp``) per extra decision.
Once training has decided an automatic pruner's architecture, :meth:`CellPlan.resolve` gives a new, complete plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rethink.arch import ArchSpec, default_spec, family_of, model_info, spec_cost
from rethink.arch.cost import counted_flops
from rethink.arch.graph.family import NAME as GRAPH
from rethink.arch.graph.weights import LIBRARY_WEIGHTS, weights_file
from rethink.arch.stages import group_stages, stage_kept_ratios
from rethink.arch.surgery import group_widths
from rethink.errors import UserError
from rethink.pipeline.budget import Budget
from rethink.pipeline.checks import check_calibration, check_global_batch, configured_pruner, large_spec
from rethink.pipeline.config import load_settings
from rethink.pipeline.source import describe, source_config
from rethink.pruning.naming import cell_group
from rethink.pruning.registry import Pruner, SourceCell, SourceModels
from rethink.settings.schema import FRESH, ORIGINAL, Settings
from rethink.training.checkpoints import TORCHVISION, TORCHVISION_OPTIONS, torchvision_fetch_hint, torchvision_file
from rethink.training.recipes import Recipe, pretrain_recipe

DECIDED_BY_TRAINING = ["per-layer widths", "params and FLOPs of the pruned model", "Scratch-B epochs"]


@dataclass(frozen=True)
class StagePlan:
    """One ``Trainer.fit``: which model it trains, where its weights start, and its recipe."""

    name: str  # "pretrain" | "imp" (a round of iterative pruning) | "retrain"
    model: str  # "large" | "pruned"
    init: str  # schedule.init: INHERITED | FRESH | ORIGINAL
    recipe: Recipe | None  # None: decided by training (Scratch-B of an automatic pruner)


@dataclass(frozen=True)
class SparseCost:
    """Unstructured pruning: params and FLOPs of the nonzero weights, and the sparsity report."""

    params: int
    flops: dict[str, int]
    report: dict[str, Any]
    stages: dict[int, float]  # kept fraction of 3x3 conv weights per stage (feature-map size, largest first)


@dataclass(frozen=True)
class CellPlan:
    """A planned cell: its settings, the configured pruner, the specs, the stages in order and the budget."""

    settings: Settings
    cell: dict[str, Any]
    pruner: Pruner
    large: ArchSpec
    pruned: ArchSpec | None
    requested_target: ArchSpec | None  # the predefined target before pruner.round_to aligned it (None: decided)
    input_size: int
    stages: tuple[StagePlan, ...]
    base_epochs: int  # the large model's epochs (Scratch-B: schedule.base_epochs)
    pretrained_weights: str | None = None  # the file of pretrain.weights the pretrain stage imports instead of training
    budget: Budget | None = None
    sparse: SparseCost | None = None
    decided: dict[str, Any] | None = None  # the decision's notes (decision.json), once training has decided
    source: "CellPlan | None" = None  # the cell whose decision guides this one's target or decision (Pruner.source)
    detection: Any = None  # task=detection: the detection stages after this cell's (rethink.detection.plan)

    @property
    def model_name(self) -> str:
        return self.settings.model.name

    def group_label(self) -> str:
        """``cifar10/resnet56/l1 A/scratch_b``: the cell without its seed, naming the architecture a model family
        builds (``cifar10/torchvision.resnet18/l1 50%/finetune``)."""
        model = model_info(self.model_name).cell_label(self.settings.model.options)
        return cell_group({**self.cell, "model": model}, self.settings.config()["pruner"])

    @property
    def specs(self) -> dict[str, ArchSpec]:
        return {"large": self.large} | ({} if self.pruned is None else {"pruned": self.pruned})

    @property
    def needs_pretrain(self) -> bool:
        return self.stages[0].name == "pretrain"

    @property
    def retrain(self) -> StagePlan:
        return self.stages[-1]

    @property
    def trained(self) -> tuple[StagePlan, ...]:
        """The stages that train: all but an imported large model's, which is only evaluated."""
        return self.stages[1:] if self.pretrained_weights else self.stages

    def training_epochs(self) -> int | None:
        """The epochs of all the cell's training stages; None while training has yet to decide one (the Scratch-B
        epochs of an automatic pruner)."""
        recipes = [stage.recipe for stage in self.trained]
        return None if None in recipes else sum(recipe.epochs for recipe in recipes)

    def cost(self, model: str) -> dict[str, Any]:
        """Params and FLOPs (MACs, the FLOPs under the family's convention and its name) of one of the cell's
        models."""
        if model == "pruned" and self.sparse is not None:  # masks: only nonzero weights count (protocol #flops)
            return {"params": self.sparse.params, "flops": self.sparse.flops}
        c = spec_cost(self.specs[model], self.input_size)
        cost: dict[str, Any] = {"params": c.params, "flops": c.flops_record()}
        if c.reference_params != c.params:  # channel selections: the reference code counts their index vectors
            cost["params_reference"] = c.reference_params
        return cost

    def pruning_summary(self) -> dict[str, Any] | None:
        """Requested settings beside achieved ratios and the per-layer widths before/after."""
        if not self.pruner.prunes:
            return None
        name, requested = self.pruner.name, self.pruner.requested()
        notes = {"notes": self.pruner.notes()} if self.pruner.notes() else {}
        if self.pruned is None:
            return {"pruner": name, "requested": requested, "decided_by_training": DECIDED_BY_TRAINING, **notes}
        large, pruned = self.cost("large"), self.cost("pruned")
        groups = not family_of(self.large).missing(("channel_groups",))
        before, after = (group_widths(self.large), group_widths(self.pruned)) if groups else ({}, {})
        achieved = {}
        if before:
            # a group gone from the pruned model (a removed residual branch) kept 0 channels; groups a pruner adds
            # (ResNet-50-2x's selections) are not counted
            kept = sum(after.get(name, 0) for name in before) / sum(before.values())
            achieved["channels_pruned_fraction"] = round(1 - kept, 6)
        achieved |= {
            "params_pruned_fraction": round(1 - pruned["params"] / large["params"], 6),
            "flops_pruned_fraction": round(1 - counted_flops(pruned["flops"]) / counted_flops(large["flops"]), 6),
            "flops_ratio": round(counted_flops(large["flops"]) / counted_flops(pruned["flops"]), 6),
        }
        summary: dict[str, Any] = {"pruner": name, "requested": requested, "achieved": achieved}
        if before:
            summary["widths"] = {"before": before, **self._requested_widths(), "after": after}
            stages = group_stages(self.large, self.input_size)
            kept = stage_kept_ratios(before, after, stages)
            summary["stage_ratios"] = {"unit": "channels", "sizes": list(kept), "kept": _rounded(kept.values())}
        if self.sparse is not None:
            summary["sparsity"] = self.sparse.report
            kept = self.sparse.stages
            summary["stage_ratios"] = {"unit": "weights", "sizes": list(kept), "kept": _rounded(kept.values())}
        if self.decided:
            summary["decision"] = self.decided
        return summary | notes

    def _requested_widths(self) -> dict[str, Any]:
        """``{"requested": widths}``: the kept widths before ``pruner.round_to`` aligned them (else {})."""
        if not self.pruner.round_to():
            return {}
        if self.decided and "requested_widths" in self.decided:  # decided by training (slimming)
            return {"requested": self.decided["requested_widths"]}
        if self.requested_target is not None:
            return {"requested": group_widths(self.requested_target)}
        return {}

    def imported(self) -> dict[str, Any] | None:
        """The file the pretrain stage imports, whether it is there, and (when not) the error a run stops with."""
        if self.pretrained_weights is None:
            return None
        if Path(self.pretrained_weights).is_file():
            return {"file": self.pretrained_weights, "found": True}
        return {"file": self.pretrained_weights, "found": False, "error": _missing_weights(self)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``dry_run``."""
        budget = self.budget
        imported = self.imported()
        source = {} if self.source is None else {"source": self.source.to_dict()}
        if self.detection is not None:
            source["detection"] = self.detection.to_dict()
        return {
            "cell": self.cell,
            "input_size": self.input_size,
            "models": {name: self.cost(name) for name in self.specs},
            "pruning": self.pruning_summary(),
            "budget": None if budget is None else {**dataclasses.asdict(budget), "base_epochs": self.base_epochs},
            "stages": [
                {"name": s.name, "model": s.model, "init": s.init, **(dataclasses.asdict(s.recipe) if s.recipe else {})}
                | ({} if s.recipe else {"recipe": "decided by training (Scratch-B of the pruned model's FLOPs)"})
                | ({"imports": imported} if imported and s.name == "pretrain" else {})
                for s in self.stages
            ],
            **source,
        }

    def resolve(
        self, pruned: ArchSpec, sparse: SparseCost | None = None, decided: dict[str, Any] | None = None
    ) -> "CellPlan":
        """The plan once training has decided the pruned spec (and, for masks, its sparse cost; ``decided``: the
        decision's notes): a new plan whose retraining recipe and Scratch-B budget follow from it."""
        plan = dataclasses.replace(self, pruned=pruned, sparse=sparse, decided=decided)
        retrain, budget = _retrain_stage(plan)
        return dataclasses.replace(plan, stages=(*self.stages[:-1], retrain), budget=budget)


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 6) for v in values]


def _importing(plan: CellPlan) -> CellPlan:
    """``plan`` with the file its pretrain stage imports: ``pretrain.weights`` resolved (``torchvision``: the model's
    torchvision weights in the torch hub cache, which must fit the large model; for a graph model ``torchvision`` or
    ``timm``: its library's weights, :mod:`rethink.arch.graph.weights`). A missing file stops a run here,
    before any training; ``dry_run`` reports it instead. A cell without a pretrain stage imports nothing."""
    settings, model, large = plan.settings, plan.model_name, plan.large
    weights = settings.pretrain.weights
    if weights is None or not plan.needs_pretrain:
        return plan
    if weights in LIBRARY_WEIGHTS and large.family == GRAPH:
        try:
            path = weights_file(large, weights)[0]
        except ValueError as exc:
            raise UserError(f"{exc}.") from None
    elif weights == TORCHVISION:
        path = torchvision_file(model)
        required = TORCHVISION_OPTIONS.get(model, {})
        reference = default_spec(model, 1000, **required)
        if large != reference:
            changes = [
                f"model.{k}={v}"
                for k, v in settings.model.options.items()
                if default_spec(model, 1000, **{**required, k: v}) != reference
            ]
            if large.num_classes != 1000:
                changes.insert(0, f"{large.num_classes} classes (dataset={settings.dataset.name})")
            what = ", ".join(changes) or f"pruner={plan.pruner.name}, which changes the large model"
            needed = "".join(f" and model.{k}={v}" for k, v in required.items())
            raise UserError(
                f"pretrain.weights=torchvision: torchvision's weights fit model '{model}' only as torchvision builds "
                f"it, for the 1000 ImageNet classes with the defaults of conf/model/{model}.yaml{needed}, but this "
                f"cell has {what}. Use that model with dataset=imagenet, or train the large model here "
                "(pretrain.weights=null)."
            )
    else:
        path = Path(weights).resolve()
    plan = dataclasses.replace(plan, pretrained_weights=str(path))
    if not path.is_file() and not settings.dry_run:
        raise UserError(_missing_weights(plan))
    return plan


def _missing_weights(plan: CellPlan) -> str:
    """The error for a ``pretrain.weights`` file that is not there."""
    weights = plan.settings.pretrain.weights
    if weights in LIBRARY_WEIGHTS and plan.large.family == GRAPH:
        return f"pretrain.weights={weights}: {weights_file(plan.large, weights)[1]}; or give pretrain.weights a path."
    if weights == TORCHVISION:
        return torchvision_fetch_hint(plan.model_name, Path(plan.pretrained_weights))
    return (
        f"pretrain.weights={weights!r}: no such file. Give the path of a saved state_dict of the large model, or "
        "null to train it."
    )


def _pretrain(settings: Settings) -> Recipe:
    return pretrain_recipe(settings.pretrain, settings.dataset.recipe.milestone_fractions, settings.optim)


def _retrain_stage(plan: CellPlan) -> tuple[StagePlan, Budget | None]:
    """The retraining stage of ``plan``'s schedule (its recipe waits for the pruned spec when Scratch-B needs it)."""
    settings = plan.settings
    ratio = None
    if plan.pruned is not None:
        ratio = counted_flops(plan.cost("large")["flops"]) / counted_flops(plan.cost("pruned")["flops"])
    recipe, budget = settings.schedule.retrain_recipe(
        _pretrain(settings), settings.optim, ratio, plan.pruner.stretches_scratch_b
    )
    return StagePlan("retrain", "pruned", str(settings.schedule.init), recipe), budget


def build_plan(settings: Settings) -> CellPlan:
    """Plan the cell of ``settings``; raises :class:`UserError` on input that does not fit together."""
    schedule, model = settings.schedule, settings.model.name
    large = large_spec(settings)
    pruner, large, target, requested = configured_pruner(settings, large)
    baseline = schedule.init is None
    if (not pruner.prunes) != baseline:
        fix = (
            "pick a pruner, e.g. pruner=l1"
            if not pruner.prunes
            else "pick a retraining schedule, e.g. schedule=finetune"
        )
        raise UserError(
            f"schedule={schedule.name} with pruner={pruner.name}: schedule=baseline trains the unpruned model and "
            f"every other schedule retrains a pruned one; {fix}."
        )
    check_global_batch(settings)
    pretrain = _pretrain(settings)
    cell = {
        "dataset": settings.dataset.name,
        "model": model,
        "pruner": pruner.name,
        "schedule": schedule.name,
        "seed": settings.seed,
    }
    plan = CellPlan(
        settings=settings,
        cell=cell,
        pruner=pruner,
        large=large,
        pruned=target,
        requested_target=requested,
        input_size=settings.dataset.image_size,
        stages=(StagePlan("pretrain", "large", FRESH, pretrain),),
        base_epochs=getattr(schedule, "base_epochs", pretrain.epochs),
    )
    if baseline:
        return _importing(plan)
    retrain, budget = _retrain_stage(plan)
    needs = pruner.requirements()
    if retrain.init != FRESH and not needs.trained_model:
        what = "a fixed target architecture" if target is not None else "an architecture derived from another cell"
        raise UserError(
            f"pruner={pruner.name} with {what} has no trained weights to inherit; train it from "
            f"scratch (schedule=scratch_e or scratch_b), not schedule={schedule.name}."
        )
    guide = pruner.source()
    source = None if guide is None else _source_plan(settings, guide, plan)
    if source is not None and not needs.trained_model:  # the target derives from the source's decision alone
        return dataclasses.replace(plan, stages=(retrain,), budget=budget, source=source)
    iterative = pruner.rounds() > 1
    if (retrain.init == ORIGINAL or iterative) and settings.pretrain.weights:
        what = f"iterative pruning (pruner.rounds={pruner.rounds()})" if iterative else f"schedule={schedule.name}"
        raise UserError(
            f"{what} starts from the large model's original initialisation, which imported "
            f"pretrain.weights='{settings.pretrain.weights}' do not have; train the large model here "
            "(pretrain.weights=null)."
        )
    stages: tuple[StagePlan, ...] = ()
    if retrain.init != FRESH or target is None:  # the decision needs the trained large model
        rounds = tuple(StagePlan("imp", "large", ORIGINAL, pretrain) for _ in range(pruner.rounds() - 1))
        stages = (*plan.stages, *rounds)
        check_calibration(settings, pruner, large, target)
    return _importing(dataclasses.replace(plan, stages=(*stages, retrain), budget=budget, source=source))


def _source_plan(settings: Settings, guide: SourceCell, plan: CellPlan) -> CellPlan:
    """The plan of the cell whose decision guides ``plan``'s target (:mod:`rethink.pipeline.source`), checked to be
    an automatic pruner's and to fit ``plan``'s model."""
    what = describe(guide, settings)
    try:
        source = build_plan(load_settings(source_config(settings, guide)))
    except UserError as exc:
        raise UserError(f"pruner={settings.pruner.name}: its source cell ({what}) cannot be planned: {exc}") from None
    if not source.needs_pretrain or source.pruned is not None:
        raise UserError(
            f"pruner={settings.pruner.name}: its source cell ({what}) has no decision of a trained model to follow; "
            "the source must be an automatic pruner (e.g. pruner=slimming)."
        )
    try:
        plan.pruner.check_source(plan.large, plan.input_size, SourceModels(source.large, None, source.input_size))
    except ValueError as exc:
        raise UserError(f"pruner={plan.pruner.name} with model '{plan.model_name}': {exc}") from None
    return source
