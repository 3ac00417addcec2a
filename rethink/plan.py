"""Resolve a composed config into the plan of a cell: validated names and numbers, model specs, costs and stages.

Everything here runs before any data is loaded or any training starts, so bad input fails fast and ``dry_run``
can print the plan without touching data. A cell walks up to three stages:

    pretrain (large model) -> prune (criterion + surgery) -> retrain (schedule)

``schedule=baseline`` is the pretrain stage alone. Retraining from random init with a predefined target (L1-norm
variants or ratios) needs no trained large model: the pruned spec is built directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rethink import validate as v
from rethink.arch import INPUT_SIZE, ArchSpec, UnknownModelError, default_spec, model_info
from rethink.budget import Budget, floor, scratch_b_budget, stretch_stages
from rethink.cost import spec_cost
from rethink.data import DATASETS
from rethink.errors import UserError
from rethink.pruning.surgery import group_widths
from rethink.pruning.targets import l1_target_spec
from rethink.training import Recipe

DOMAIN_NAMES = {"cifar": "a CIFAR", "imagenet": "an ImageNet"}
PRUNERS = (
    "none",
    "l1",
    "random",
    "slimming",
    "magnitude",
    "uniform",
    "sss",
)  # the pruned architecture is decided by the trained large model
SCHEDULES = ("baseline", "finetune", "scratch_e", "scratch_b", "finetune_restart", "lottery", "lr_rewind")
INITS = ("pretrained", "random", "original")


@dataclass(frozen=True)
class StagePlan:
    """One ``Trainer.fit``: which model it trains, where its weights start, and its recipe."""

    name: str  # "pretrain" | "retrain"
    model: str  # "large" | "pruned"
    init: str  # "random" | "pretrained" | "original"
    recipe: Recipe | None  # None: decided by training (Scratch-B of an automatic pruner)


@dataclass
class CellPlan:
    """A resolved cell: identity, model specs, pruner settings, stages in order and the retraining budget."""

    cell: dict[str, Any]
    model_name: str
    specs: dict[str, ArchSpec]
    input_size: int
    pruner: dict[str, Any]
    stages: list[StagePlan] = field(default_factory=list)
    base_epochs: int = 0  # the large model's epochs (Scratch-B: schedule.base_epochs)
    pretrained_weights: str | None = None  # pretrain.weights: a trained large model to import instead of training
    budget: Budget | None = None
    regularizer: dict[str, Any] | None = None  # pretraining penalty of an automatic pruner, e.g. BN sparsity
    sparse: dict[str, Any] | None = None  # unstructured pruning: nonzero params, sparse FLOPs, sparsity report

    @property
    def needs_pretrain(self) -> bool:
        return self.stages[0].name == "pretrain"

    @property
    def needs_pruning(self) -> bool:
        return self.pruner["name"] != "none"

    def cost(self, model: str) -> dict[str, Any]:
        """Params and FLOPs (MACs and the paper's 2x-MAC convention) of one of the cell's models."""
        if model == "pruned" and self.sparse is not None:  # masks: only nonzero weights count (paper-spec §3)
            return {"params": self.sparse["params"], "flops": self.sparse["flops"]}
        c = spec_cost(self.specs[model], self.input_size)
        return {"params": c.params, "flops": {"macs": c.macs, "paper": c.flops}}

    def pruning_summary(self) -> dict[str, Any] | None:
        """Requested settings beside achieved ratios and the per-layer widths before/after."""
        if not self.needs_pruning:
            return None
        requested = {k: val for k, val in self.pruner.items() if k != "name"}
        if "pruned" not in self.specs:
            return {"pruner": self.pruner["name"], "requested": requested, "decided_by_training": DECIDED_BY_TRAINING}
        large, pruned = self.cost("large"), self.cost("pruned")
        before, after = group_widths(self.specs["large"]), group_widths(self.specs["pruned"])
        return {
            "pruner": self.pruner["name"],
            "requested": requested,
            "achieved": {
                "channels_pruned_fraction": round(1 - sum(after.values()) / sum(before.values()), 6),
                "params_pruned_fraction": round(1 - pruned["params"] / large["params"], 6),
                "flops_pruned_fraction": round(1 - pruned["flops"]["paper"] / large["flops"]["paper"], 6),
                "flops_ratio": round(large["flops"]["paper"] / pruned["flops"]["paper"], 6),
            },
            "widths": {"before": before, "after": after},
            **({"sparsity": self.sparse["report"]} if self.sparse else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``dry_run``."""
        return {
            "cell": self.cell,
            "input_size": self.input_size,
            "models": {name: self.cost(name) for name in self.specs},
            "pruning": self.pruning_summary(),
            "budget": None if self.budget is None else {**asdict(self.budget), "base_epochs": self.base_epochs},
            "stages": [
                {"name": s.name, "model": s.model, "init": s.init, **(asdict(s.recipe) if s.recipe else {})}
                | ({} if s.recipe else {"recipe": "decided by training (Scratch-B of the pruned model's FLOPs)"})
                for s in self.stages
            ],
        }

    def resolve_pruned(self, cfg: DictConfig, spec: ArchSpec, sparse: dict[str, Any] | None = None) -> None:
        """Fix the pruned spec (and, for masks, the sparse cost) once an automatic pruner has decided it, and the
        retraining budget that depends on it."""
        self.specs["pruned"], self.sparse = spec, sparse
        pretrain = pretrain_recipe(cfg)
        self.stages[-1] = _retrain_stage(cfg, self, pretrain)


DECIDED_BY_TRAINING = ["per-layer widths", "params and FLOPs of the pruned model", "Scratch-B epochs"]


def milestones_for(epochs: int, explicit: list[int] | None, fractions: list[float]) -> list[int]:
    """Explicit LR-drop epochs, or ``int(epochs * f)`` for each fraction of the data set's recipe."""
    if explicit is not None:
        return sorted(set(explicit))
    return sorted({floor(epochs * f) for f in fractions} - {0})  # int() as the reference code


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


def _optim(cfg: DictConfig) -> dict[str, Any]:
    return {
        "lr_gamma": v.number(cfg, "optim.lr_gamma", high=1.0),
        "momentum": v.number(cfg, "optim.momentum", low_inclusive=True, high=1.0),
        "weight_decay": v.number(cfg, "optim.weight_decay", low_inclusive=True),
        "nesterov": bool(v.get(cfg, "optim.nesterov")),
    }


def _recipe(cfg: DictConfig, prefix: str, epochs: int, milestones: list[int] | None, fractions: list[float]) -> Recipe:
    lr = v.number(cfg, f"{prefix}.lr")
    chosen = milestones_for(epochs, milestones, fractions)
    if any(m > epochs for m in chosen):
        raise UserError(f"{prefix}.milestones={chosen}: every LR drop must fall within the {epochs} epochs.")
    return Recipe(epochs=epochs, lr=lr, milestones=chosen, **_optim(cfg))


def pretrain_recipe(cfg: DictConfig) -> Recipe:
    """The large model's recipe: ``pretrain.*`` with the data set's milestone fractions."""
    epochs = v.positive_int(cfg, "pretrain.epochs")
    fractions = v.get(cfg, "dataset.recipe.milestone_fractions")
    return _recipe(cfg, "pretrain", epochs, v.int_list(cfg, "pretrain.milestones"), fractions)


def lr_rewind_recipe(cfg: DictConfig, pretrain: Recipe) -> Recipe:
    """The last ``schedule.epochs`` epochs of the pretrain LR schedule (Renda et al. 2020), as a recipe of its own."""
    epochs = v.positive_int(cfg, "schedule.epochs")
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
        **{k: getattr(pretrain, k) for k in ("lr_gamma", "momentum", "weight_decay", "nesterov")},
    )


def _pruned_spec(cfg: DictConfig, large: ArchSpec, model_name: str) -> tuple[ArchSpec, dict[str, Any]]:
    """The target spec of an L1-norm / random pruner and the requested settings."""
    settings = {
        "name": v.get(cfg, "pruner.name"),
        "variant": v.get(cfg, "pruner.variant"),
        "stage_ratios": v.get(cfg, "pruner.stage_ratios"),
        "layer_ratios": v.get(cfg, "pruner.layer_ratios"),
        "skip": v.get(cfg, "pruner.skip") or None,
    }
    if settings["variant"] is not None:
        settings["variant"] = str(settings["variant"])
    try:
        target = l1_target_spec(
            large, model_name, settings["variant"], settings["stage_ratios"], settings["layer_ratios"], settings["skip"]
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"pruner={settings['name']}: {exc}. Fix the pruner.* overrides.") from None
    return target, settings


def _slimming_settings(cfg: DictConfig, large: ArchSpec, model_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Network Slimming's requested settings and its pretraining penalty (L1 on BN scaling factors)."""
    from rethink.pruning.slimming import slimming_bn_paths

    try:
        bn_paths = slimming_bn_paths(large)
    except ValueError as exc:
        raise UserError(f"pruner=slimming with model '{model_name}': {exc}.") from None
    sparsity = v.get(cfg, "pruner.sparsity")
    if sparsity is None:
        defaults = v.get(cfg, "pruner.default_sparsity") or {}
        sparsity = defaults.get(model_name, v.get(cfg, "pruner.fallback_sparsity"))
    else:
        sparsity = v.number(cfg, "pruner.sparsity", low_inclusive=True)
    ratio = v.number(cfg, "pruner.ratio", low_inclusive=True)
    if ratio >= 1:
        raise UserError(f"pruner.ratio={ratio}: the fraction of BN channels removed must be in [0, 1).")
    settings = {
        "name": "slimming",
        "ratio": ratio,
        "sparsity": float(sparsity),
        "min_channels": v.positive_int(cfg, "pruner.min_channels"),
        "on_empty": v.choice(cfg, "pruner.on_empty", ("keep_min", "error")),
    }
    return settings, {"bn_sparsity": float(sparsity), "bn_paths": bn_paths}


def _uniform_spec(cfg: DictConfig, large: ArchSpec, model_name: str) -> tuple[ArchSpec, dict[str, Any]]:
    """The uniform control (paper Figure 3): one keep fraction for every BN channel group, from a ratio or from the
    total channel count of a reference pruned spec (e.g. the ``spec.json`` that slimming decided)."""
    from rethink.pruning.slimming import slimming_groups, uniform_keep_widths, uniform_target, with_group_widths

    reference, ratio = v.get(cfg, "pruner.reference"), v.get(cfg, "pruner.ratio")
    if (reference is None) == (ratio is None):
        raise UserError(
            "pruner=uniform needs exactly one of pruner.ratio (fraction of channels removed) and "
            "pruner.reference (a pruned spec.json whose channel count to match)."
        )
    try:
        if reference is not None:
            if not Path(reference).is_file():
                raise UserError(f"pruner.reference='{reference}': no such file; give a pruned model's spec.json.")
            target = uniform_target(large, ArchSpec.from_json(Path(reference).read_text()))
        else:
            ratio = v.number(cfg, "pruner.ratio", low_inclusive=True)
            if ratio >= 1:
                raise UserError(f"pruner.ratio={ratio}: the fraction of channels removed must be in [0, 1).")
            pool = sum(group.width for group in slimming_groups(large, "the uniform control"))
            target = with_group_widths(large, uniform_keep_widths(large, max(1, round(pool * (1 - ratio)))))
    except ValueError as exc:
        raise UserError(f"pruner=uniform with model '{model_name}': {exc}.") from None
    return target, {"name": "uniform", "ratio": ratio, "reference": reference}


def _sss_settings(cfg: DictConfig, plan: CellPlan) -> None:
    """Sparse Structure Selection: a predefined target (``variant``) or, automatically, residual-branch scaling
    factors trained with a sparse penalty (``gamma``) and the branches whose factor ends at or below ``threshold``
    removed."""
    from rethink.pruning.sss import check_sss_family, sss_target_spec, with_branch_scale

    large, variant = plan.specs["large"], v.get(cfg, "pruner.variant")
    try:
        check_sss_family(large)
        if variant is not None:
            plan.specs["pruned"] = sss_target_spec(large, str(variant))
    except ValueError as exc:
        raise UserError(f"pruner=sss with model '{plan.model_name}': {exc}.") from None
    gamma = v.number(cfg, "pruner.gamma", low_inclusive=True)
    threshold = v.number(cfg, "pruner.threshold", low_inclusive=True)
    plan.pruner = {"name": "sss", "variant": variant, "gamma": gamma, "threshold": threshold}
    if variant is None:
        plan.specs["large"] = with_branch_scale(large)
        plan.regularizer = {"sss_gamma": gamma}


def _magnitude_settings(cfg: DictConfig) -> dict[str, Any]:
    """Unstructured magnitude pruning (Han et al.): the fraction of conv weights removed and its scope."""
    ratio = v.number(cfg, "pruner.ratio", low_inclusive=True)
    if ratio >= 1:
        raise UserError(f"pruner.ratio={ratio}: the fraction of conv weights removed must be in [0, 1).")
    rounds = v.positive_int(cfg, "pruner.rounds")
    round_ratio = v.get(cfg, "pruner.round_ratio")
    if rounds > 1:
        round_ratio = v.number(cfg, "pruner.round_ratio", low_inclusive=True) if round_ratio is not None else None
        if round_ratio is None or round_ratio >= 1:
            raise UserError(
                f"pruner.rounds={rounds} needs pruner.round_ratio in [0, 1): the share of the remaining conv weights "
                "each round removes (Frankle & Carbin use 0.2)."
            )
    scope = v.choice(cfg, "pruner.scope", ("global", "layer"))
    return {"name": "magnitude", "ratio": ratio, "scope": scope, "rounds": rounds, "round_ratio": round_ratio}


def _retrain_stage(cfg: DictConfig, plan: CellPlan, pretrain: Recipe) -> StagePlan:
    name = plan.cell["schedule"]
    init = v.choice(cfg, "schedule.init", INITS)
    fractions = v.get(cfg, "schedule.milestone_fractions") if name != "lr_rewind" else []
    if name == "lr_rewind":
        return StagePlan("retrain", "pruned", init, lr_rewind_recipe(cfg, pretrain))
    if name == "scratch_b" and "pruned" not in plan.specs:
        return StagePlan("retrain", "pruned", init, None)
    if name == "scratch_b":
        flops_ratio = plan.cost("large")["flops"]["paper"] / plan.cost("pruned")["flops"]["paper"]
        cap = v.get(cfg, "schedule.cap")
        if cap is not None:
            cap = v.number(cfg, "schedule.cap")
        plan.base_epochs = v.positive_int(cfg, "schedule.base_epochs")
        rule = v.choice(cfg, "schedule.milestone_rule", ("fraction", "step"))
        if plan.pruner["name"] == "sss":  # SSS stretches every LR stage (paper-spec §1.2)
            plan.budget = stretch_stages(pretrain.milestones, plan.base_epochs, flops_ratio)
        else:
            plan.budget = scratch_b_budget(plan.base_epochs, flops_ratio, fractions, cap, rule)
        epochs = v.positive_int(cfg, "schedule.epochs", allow_none=True) or plan.budget.epochs
        milestones = v.int_list(cfg, "schedule.milestones")
        if milestones is None and epochs == plan.budget.epochs:
            milestones = plan.budget.milestones
        return StagePlan("retrain", "pruned", init, _recipe(cfg, "schedule", epochs, milestones, fractions))
    epochs = v.positive_int(cfg, "schedule.epochs")
    recipe = _recipe(cfg, "schedule", epochs, v.int_list(cfg, "schedule.milestones"), fractions)
    return StagePlan("retrain", "pruned", init, recipe)


def _pretrained_weights(cfg: DictConfig) -> str | None:
    """``pretrain.weights`` if set: it must name an existing file."""
    weights = v.get(cfg, "pretrain.weights")
    if weights is None:
        return None
    if not isinstance(weights, str) or not Path(weights).is_file():
        raise UserError(
            f"pretrain.weights={weights!r}: no such file. Give the path of a saved state_dict of the large model, or "
            "null to train it."
        )
    return str(Path(weights).resolve())


PROGRESS_BARS = ("rich", "tqdm")


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
    v.choice(cfg, "progress_bar", PROGRESS_BARS)
    pruner = v.choice(cfg, "pruner.name", PRUNERS)
    schedule = v.choice(cfg, "schedule.name", SCHEDULES)
    model_name = v.get(cfg, "model.name")
    large = _model_spec(cfg, num_classes, image_size)
    if (pruner == "none") != (schedule == "baseline"):
        fix = (
            "pick a pruner, e.g. pruner=l1"
            if pruner == "none"
            else "pick a retraining schedule, e.g. schedule=finetune"
        )
        raise UserError(
            f"schedule={schedule} with pruner={pruner}: schedule=baseline trains the unpruned model and every other "
            f"schedule retrains a pruned one; {fix}."
        )
    cell = {"dataset": dataset, "model": model_name, "pruner": pruner, "schedule": schedule, "seed": seed}
    plan = CellPlan(cell, model_name, {"large": large}, image_size, {"name": pruner})
    pretrain = pretrain_recipe(cfg)
    plan.base_epochs = pretrain.epochs
    plan.pretrained_weights = _pretrained_weights(cfg)
    if pruner == "none":
        plan.stages.append(StagePlan("pretrain", "large", "random", pretrain))
        return plan
    if pruner == "slimming":
        plan.pruner, plan.regularizer = _slimming_settings(cfg, large, model_name)
    elif pruner == "magnitude":
        plan.pruner = _magnitude_settings(cfg)
    elif pruner == "uniform":
        plan.specs["pruned"], plan.pruner = _uniform_spec(cfg, large, model_name)
    elif pruner == "sss":
        _sss_settings(cfg, plan)
    else:
        plan.specs["pruned"], plan.pruner = _pruned_spec(cfg, large, model_name)
    retrain = _retrain_stage(cfg, plan, pretrain)
    if "pruned" in plan.specs and pruner in ("uniform", "sss") and retrain.init != "random":
        raise UserError(
            f"pruner={pruner} with a fixed target architecture has no trained weights to inherit; train it from "
            f"scratch (schedule=scratch_e or scratch_b), not schedule={schedule}."
        )
    iterative = plan.pruner.get("rounds", 1) > 1
    if (retrain.init == "original" or iterative) and plan.pretrained_weights:
        what = "iterative magnitude pruning (pruner.rounds > 1)" if iterative else f"schedule={schedule}"
        raise UserError(
            f"{what} starts from the large model's original initialisation, which imported "
            f"pretrain.weights='{plan.pretrained_weights}' do not have; train the large model here "
            "(pretrain.weights=null)."
        )
    if retrain.init != "random" or "pruned" not in plan.specs:  # an automatic pruner needs the trained large model
        plan.stages.append(StagePlan("pretrain", "large", "random", pretrain))
    plan.stages.append(retrain)
    return plan
