"""The models of the paper's tables whose architecture is known before training, built through the project's own
code paths: each cell is composed with Hydra (``conf/``), validated (:func:`rethink.pipeline.config.load_settings`)
and planned (:func:`rethink.pipeline.tasks.cell_plan`); the plan gives the large spec, the pruned spec of a
fixed-target pruner, and the costs (params, FLOPs in the paper's convention).

A weight pruner (magnitude masks) has no pruned spec before training: it decides on a randomly initialised large
model (the count of weights a fixed ratio removes does not depend on the weights) and the masked model is measured;
its nominal params and FLOPs count only the nonzero weights, as a sparsity paper would. A cell whose architecture only
training decides (Network Slimming, the Figure 3 controls matched to its decision) is listed with the reason it is
skipped, never dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from hydra import compose, initialize_config_dir
from torch import nn

from rethink.arch import ArchSpec, build, model_info
from rethink.arch.cost import counted_flops
from rethink.arch.registry import model_cost
from rethink.errors import UserError
from rethink.options import CONF_DIR
from rethink.pipeline.config import load_settings
from rethink.pipeline.plan import CellPlan
from rethink.pipeline.tasks import cell_plan
from rethink.pruning.context import PruneContext
from rethink.pruning.naming import row_setting, setting_label
from rethink.results.tables import UNPRUNED_TABLE


def _rows(group: str, dataset: str, rows: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    return [(group, (f"dataset={dataset}", f"+experiment/paper/row={row}")) for row in rows]


def _variants(group: str, base: tuple[str, ...], key: str, values: Iterable[Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(group, (*base, f"{key}={value}")) for value in values]


# (paper experiment, overrides) of every pruned cell measured: conf/experiment/paper/<experiment>.yaml's rows
PAPER_CELLS: list[tuple[str, tuple[str, ...]]] = [
    *_rows("l1_cifar10", "cifar10", ["vgg16_a", "resnet56_a", "resnet56_b", "resnet110_a", "resnet110_b"]),
    *_variants(
        "magnitude_cifar10", ("dataset=cifar10", "model=vgg16", "pruner=magnitude"), "pruner.ratio", [0.3, 0.5, 0.8]
    ),
    *_variants(
        "magnitude_cifar10", ("dataset=cifar10", "model=resnet56", "pruner=magnitude"), "pruner.ratio", [0.3, 0.5, 0.8]
    ),
    *_variants("l1_imagenet_resnet34", ("dataset=imagenet", "model=resnet34", "pruner=l1"), "pruner.variant", "AB"),
    *_variants(
        "sss_imagenet",
        ("dataset=imagenet", "model=resnet50", "pruner=sss"),
        "pruner.variant",
        ["resnet41", "resnet32", "resnet26"],
    ),
    *_rows("thinet_imagenet", "imagenet", ["thinet_vgg_conv", "thinet_vgg_gap", "thinet_vgg_tiny"]),
    *_rows("thinet_imagenet", "imagenet", ["thinet_resnet50_30", "thinet_resnet50_50", "thinet_resnet50_70"]),
    *_rows("regression_imagenet", "imagenet", ["regression_vgg16_5x", "regression_resnet50_2x"]),
    # experiment=aligned_cifar10: the L1-norm targets with kept widths rounded to multiples of 8 and 16
    *[
        ("aligned", ("dataset=cifar10", f"+experiment/paper/row={row}", f"pruner.round_to={n}"))
        for row in ("vgg16_a", "resnet56_a", "resnet56_b", "resnet110_a", "resnet110_b")
        for n in (8, 16)
    ],
    # the graph family (experiment=modern_cifar10): torchvision models with CIFAR stems, L1-norm at 50 %
    *[
        ("graph", ("dataset=cifar10", f"+experiment/modern/arch={arch}", "+experiment/modern/method=l1_50"))
        for arch in ("resnet18", "mobilenet_v2", "efficientnet_b0")
    ],
]
# --quick: ResNet-56 and ResNet-56-B at a quarter of the width
QUICK_CELLS = [("quick", ("dataset=cifar10", "+experiment/paper/row=resnet56_b", "model.width_multiplier=0.25"))]
# the paper's pruned models that training decides (what is measured is known only after a run)
TRAINING_DECIDED = [
    ("slimming_cifar10, slimming_cifar100, slimming_imagenet_vgg11", "Network Slimming's widths are decided by the "
     "sparsity-trained large model"),
    ("figure3_slimming, figure3_guided (uniform and guided controls)", "their widths match Network Slimming's "
     "decision, which training makes"),
    ("figure3_weight_level (guided sparsity)", "its per-stage sparsity follows a decision on the trained model"),
]  # fmt: skip


IDENTITY = ("table", "dataset", "model", "options", "pruner", "setting")  # what a report row is keyed by


@dataclass
class Candidate:
    """One model to time: its identity (what a report row is keyed by), its costs and how to build it."""

    name: str
    role: str  # "large" | "pruned"
    group: str  # the paper experiment it comes from
    table: str  # the report table: the pruner's name, or "unpruned" for a large model
    dataset: str
    model: str
    options: dict[str, Any]
    pruner: str
    setting: dict[str, Any]
    params: int
    flops: int  # one image, by the family's convention (the paper's: 2x MACs; graph: FlopCounterMode)
    input_size: int
    num_classes: int
    batch_size: int  # the data set's training batch
    build: Callable[[], nn.Module]
    large: str = ""  # a pruned model's large model (its name)
    notes: list[str] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        """What ``rethink.report`` matches a table row by."""
        return {key: getattr(self, key) for key in IDENTITY}


def frozen(value: Any) -> str:
    """``value`` as canonical JSON text (a dictionary key)."""
    return json.dumps(value, sort_keys=True, default=str)


def compose_plan(overrides: Iterable[str]) -> CellPlan:
    """The plan of the cell of ``overrides`` (composed from ``conf/`` as ``python -m rethink.main`` would)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return cell_plan(load_settings(compose(config_name="config", overrides=["schedule=scratch_e", *overrides])))


def seeded_build(spec: ArchSpec) -> Callable[[], nn.Module]:
    """A builder of ``spec``'s model, initialised with seed 0."""

    def make() -> nn.Module:
        torch.manual_seed(0)
        return build(spec)

    return make


def _masked_build(plan: CellPlan) -> tuple[Callable[[], nn.Module], int, int]:
    """A weight pruner's decision on a randomly initialised large model: the builder of the masked model, and its
    nonzero params and FLOPs."""
    model = seeded_build(plan.large)()
    context = PruneContext(model, plan.large, plan.model_name, seed=0)
    decision = plan.pruner.decide(context)
    state = {k: v.clone() for k, v in decision.state.items()}
    removed = sum(int((~mask).sum()) for mask in (decision.masks or {}).values())
    flops = model_cost(plan.large, model, plan.input_size, sparse=True).flops

    def make() -> nn.Module:
        masked = build(decision.spec)
        masked.load_state_dict(state)
        return masked

    return make, plan.cost("large")["params"] - removed, flops


def _decides_on_random_weights(plan: CellPlan) -> bool:
    """A weight pruner that needs neither data nor a penalty: its decision on random weights removes as many."""
    needs = plan.pruner.requirements()
    return plan.pruner.prunes_weights and not needs.calibration and not needs.regularizer and plan.source is None


def _labels(plans: list[CellPlan]) -> dict[int, str]:
    """``imagenet/resnet50 (downsample_bias=True)``: the large model of each plan, with the model options that tell
    it from another large model of the same name."""
    options: dict[tuple[str, str], list[dict[str, Any]]] = {}
    names = [model_info(plan.model_name).cell_label(plan.settings.model.options) for plan in plans]
    for plan, model in zip(plans, names):
        known = options.setdefault((plan.settings.dataset.name, model), [])
        if dict(plan.settings.model.options) not in known:
            known.append(dict(plan.settings.model.options))
    labels = {}
    for index, (plan, model) in enumerate(zip(plans, names)):
        dataset = plan.settings.dataset.name
        variants = options[(dataset, model)]
        differing = sorted({k for o in variants for k in o if any(o2.get(k) != o.get(k) for o2 in variants)})
        suffix = ", ".join(f"{k}={plan.settings.model.options.get(k)}" for k in differing)
        labels[index] = f"{dataset}/{model}" + (f" ({suffix})" if suffix else "")
    return labels


def catalogue(cells: list[tuple[str, tuple[str, ...]]]) -> tuple[list[Candidate], list[dict[str, str]]]:
    """The large and pruned models of ``cells`` (each large model once, followed by its pruned models) and the
    cells skipped, each with its reason."""
    plans, skipped = [], [{"name": name, "reason": reason} for name, reason in TRAINING_DECIDED]
    for group, overrides in cells:
        try:
            plans.append((group, compose_plan(overrides)))
        except UserError as exc:
            skipped.append({"name": f"{group}: {' '.join(overrides)}", "reason": f"cannot be planned: {exc}"})
    labels = _labels([plan for _, plan in plans])
    models: list[Candidate] = []
    larges: dict[str, Candidate] = {}
    for index, (group, plan) in enumerate(plans):
        settings, large_name = plan.settings, labels[index]
        common = dict(
            dataset=settings.dataset.name,
            model=plan.model_name,
            options=dict(settings.model.options),
            input_size=plan.input_size,
            num_classes=settings.dataset.num_classes,
            batch_size=settings.dataset.batch_size,
        )
        setting = row_setting(plan.pruner.row_setting, plan.pruner.requested())
        name = f"{large_name}/{plan.pruner.name} {setting_label(setting)}"
        notes = []
        if plan.pruned is not None:
            pruned_cost = plan.cost("pruned")
            make, params, flops = seeded_build(plan.pruned), pruned_cost["params"], counted_flops(pruned_cost["flops"])
        elif _decides_on_random_weights(plan):
            make, params, flops = _masked_build(plan)
            notes.append("masked dense model (random init, the pruner's masks); params and FLOPs: nonzero weights")
        else:
            skipped.append({"name": f"{group}: {name}", "reason": "its pruned architecture is decided by training"})
            continue
        key = frozen([large_name, plan.large.to_json()])
        if key not in larges:
            large_cost = plan.cost("large")
            larges[key] = Candidate(
                large_name, "large", group, UNPRUNED_TABLE, pruner="none", setting={},
                params=large_cost["params"], flops=counted_flops(large_cost["flops"]), build=seeded_build(plan.large),
                **common,
            )  # fmt: skip
            models.append(larges[key])
        models.append(
            Candidate(
                name,
                "pruned",
                group,
                plan.pruner.name,
                pruner=plan.pruner.name,
                setting=setting,
                params=params,
                flops=flops,
                build=make,
                large=large_name,
                notes=notes,
                **common,
            )  # fmt: skip
        )
    grouped = [m for large in larges.values() for m in models if m is large or m.large == large.name]
    return grouped, skipped


def select(models: list[Candidate], patterns: list[str]) -> list[Candidate]:
    """The pruned models whose name, paper experiment or table contains one of ``patterns`` (all when none), each
    with its large model."""
    if not patterns:
        return models
    wanted = {
        m.name for m in models if m.role == "pruned" and any(p in f"{m.name} {m.group} {m.table}" for p in patterns)
    }
    if not wanted:
        known = ", ".join(sorted({m.group for m in models}))
        raise UserError(
            f"--models {' '.join(patterns)}: no pruned model's name, paper experiment or table contains it; "
            f"give part of a name (e.g. resnet56) or an experiment ({known})."
        )
    larges = {m.large for m in models if m.name in wanted}
    return [m for m in models if m.name in wanted or (m.role == "large" and m.name in larges)]
