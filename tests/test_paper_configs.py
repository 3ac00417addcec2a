"""The paper's tables as Hydra multiruns (conf/experiment/paper/*.yaml): each composes, its sweep expands into the
expected cells, and the dry-run plans of those cells have the paper's epochs and budgets.

Hydra's ``compose`` does not expand ``hydra.sweeper.params``; the cells are expanded here exactly as the basic sweeper
does (one override per swept key, parsed by Hydra's own override parser, cartesian product). Composing takes ~0.1 s,
so every config is checked on a covering subset of its cells (each swept value at least once, seed 1) plus the cells
whose numbers the paper states.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torchvision
from conftest import CONF_DIR, compose_config, compose_settings
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from rethink.pipeline.jobs import sweep_jobs
from rethink.pipeline.plan import build_plan
from rethink.pipeline.tasks import cell_plan
from rethink.results import protocol

PAPER = CONF_DIR / "experiment" / "paper"
TABLES = sorted(p.stem for p in PAPER.glob("*.yaml"))
QUICK = sorted(p.stem for p in (PAPER / "quick").glob("*.yaml"))
ROW_KEY = "+experiment/paper/row"

# config -> number of cells of its sweep (settings x seeds)
EXPECTED_CELLS = {
    "l1_cifar10": 5 * 3 * 5,
    "l1_imagenet_resnet34": 2 * 3,
    "slimming_cifar10": 5 * 3 * 5,
    "slimming_cifar100": 5 * 3 * 5,
    "slimming_imagenet_vgg11": 3,
    "sss_imagenet": 3 * 2,
    "weight_level_cifar10": 3 * 2 * 3 * 5,
    "weight_level_cifar100": 3 * 2 * 3 * 5,
    "weight_level_imagenet": 2 * 2 * 3,
    "lottery_l1_cifar10": 5 * 2 * 2 * 5,
    "lottery_magnitude_cifar10": 2 * 2 * 2 * 2 * 5,
    "lottery_magnitude_cifar100": 2 * 2 * 2 * 2 * 5,
    "finetune_restart": 5 * 5 * 5,
    "heavy_pruning_cifar10": 3 * 3 * 5,
    "heavy_pruning_cifar100": 1 * 3 * 5,
    "unpruned_cifar10": 9 * 5,
    "unpruned_cifar100": 6 * 5,
    "unpruned_imagenet": 4,
    "thinet_imagenet": 6 * 3,
    "regression_imagenet": 2 * 3,
    "figure3_slimming": 2 * 3 * 2 * 6 * 5,
    "figure3_guided": 6 * 6 * 5,
    "figure3_weight_level": 2 * 3 * 4 * 5 * 5 + 2 * 5 * 5,  # and the union's transferred guided sparsification
    "detection_voc": 2 * 5,
}
# Figure 3's miniatures keep every method but fewer models and ratios, on the synthetic data set; transferred guided
# pruning and sparsification (from VGG-16 on CIFAR-10) are guided from VGG-16 on the same synthetic data there
FIGURE3 = {"figure3_slimming", "figure3_guided", "figure3_weight_level"}
STANDS_IN = {
    "guided_from_vgg16": "transferred_guided",
    "uniform_guided_from_vgg16": "uniform_transferred_guided",
    "guided_sparsity_from_vgg16": "transferred_guided_sparsity",
    "uniform_guided_sparsity_from_vgg16": "uniform_transferred_guided_sparsity",
}
METHOD_KEY = "+experiment/paper/method"
QUICK_STANDS_IN = {f"{METHOD_KEY}={quick}": f"{METHOD_KEY}={full}" for quick, full in STANDS_IN.items()}


def compose_with_hydra(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def sweep_axes(cfg: DictConfig) -> dict[str, list[str]]:
    """``hydra.sweeper.params`` as the basic sweeper expands it: key -> list of ``key=value`` overrides."""
    parser = OverridesParser.create()
    axes = {}
    for key, value in OmegaConf.to_container(cfg.hydra.sweeper.params).items():
        override = parser.parse_override(f"{key}={value}")
        element = override.get_key_element()
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(value)]
        axes[element] = [f"{element}={v}" for v in values]
    return axes


def covering_cells(axes: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """A few cells (seed 1) in which every swept value of every key appears at least once."""
    others = {k: v for k, v in axes.items() if k != "seed"}
    width = max((len(v) for v in others.values()), default=1)
    return [tuple(values[i % len(values)] for values in others.values()) + ("seed=1",) for i in range(width)]


# The paper's torchvision models (the weights the original experiments pruned).
TORCHVISION_WEIGHTS = {
    "resnet34": torchvision.models.ResNet34_Weights,
    "resnet50": torchvision.models.ResNet50_Weights,
    "vgg16_bn": torchvision.models.VGG16_BN_Weights,
}


def plan_of(name: str, *overrides: str) -> dict[str, Any]:
    """The dry-run plan of a cell: it reports an imported weights file (torchvision's) that is not on this machine."""
    return build_plan(compose_settings(f"experiment=paper/{name}", "dry_run=true", *overrides)).to_dict()


def retrain(plan: dict[str, Any]) -> dict[str, Any]:
    assert plan["stages"][-1]["name"] == "retrain"
    return plan["stages"][-1]


def test_every_table_has_a_config_and_a_quick_variant() -> None:
    assert set(TABLES) == set(EXPECTED_CELLS)
    assert set(QUICK) == set(TABLES)


@pytest.mark.parametrize("name", TABLES)
def test_table_config_composes_and_expands(name: str) -> None:
    cfg = compose_with_hydra(f"experiment=paper/{name}")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweep.dir == f"multirun_outputs/paper/{name}/default"  # stable: run again, it continues
    axes = sweep_axes(cfg)
    assert len(sweep_jobs(cfg)) == EXPECTED_CELLS[name]  # the product of the axes, and a union's further products
    if OmegaConf.select(cfg, "hydra.sweeper.union") is None:
        assert len(list(itertools.product(*axes.values()))) == EXPECTED_CELLS[name]
    imagenet = cfg.dataset.name == "imagenet"
    assert axes["seed"] == (["seed=1"] if imagenet else [f"seed={s}" for s in range(1, 6)])
    header = (PAPER / f"{name}.yaml").read_text()
    assert f"python -m rethink.main experiment=paper/{name}" in header and "GPU-hours" in header
    for cell in covering_cells(axes):
        settings = compose_settings(f"experiment=paper/{name}", *cell, "dry_run=true")
        plan = cell_plan(settings).to_dict()
        assert plan["cell"]["dataset"] in (cfg.dataset.name, *[c.split("=")[1] for c in axes.get("dataset", [])])
        assert plan["cell"]["seed"] == 1
        # the report compares this cell with the paper's numbers: its settings are the paper's protocol
        assert protocol.differences({"cell": plan["cell"], "config": settings.config()}) == [], cell
        for override in cell:  # each swept value reaches the cell
            key, value = override.split("=", 1)
            if key in ("schedule", "dataset"):
                assert plan["cell"][key] == value
            elif key == "task.transfer":
                assert plan["cell"]["schedule"] == value  # a detection cell's column
            elif key == "model":
                assert plan["cell"]["model"] == value
            elif key in ("pruner.variant", "pruner.ratio") and plan["pruning"]:  # detection: not Unpruned, Prune-D
                assert str(plan["pruning"]["requested"][key.split(".")[1]]) == value
            elif key == "schedule.lr":
                assert retrain(plan)["lr"] == float(value)


@pytest.mark.parametrize("name", QUICK)
def test_quick_variant_has_the_same_cells_in_miniature(name: str) -> None:
    full, quick = compose_with_hydra(f"experiment=paper/{name}"), compose_with_hydra(f"experiment=paper/quick/{name}")
    full_axes, quick_axes = sweep_axes(full), sweep_axes(quick)
    assert quick_axes.pop("seed") == ["seed=1", "seed=2"]
    full_axes.pop("seed")
    if name in FIGURE3:
        assert quick_axes.pop("dataset", None) in (None, ["dataset=synthetic"])
        full_axes.pop("dataset", None)
        assert quick_axes.keys() == full_axes.keys()
        for key, values in quick_axes.items():
            assert {QUICK_STANDS_IN.get(v, v) for v in values} <= set(full_axes[key]), key
        assert [QUICK_STANDS_IN.get(v, v) for v in quick_axes[METHOD_KEY]] == full_axes[METHOD_KEY]
        full_union, quick_union = (OmegaConf.select(c, "hydra.sweeper.union") or [] for c in (full, quick))
        assert [STANDS_IN.get(m, m) for e in quick_union for m in e[METHOD_KEY].split(",")] == [
            m for e in full_union for m in e[METHOD_KEY].split(",")
        ]  # the same further products (the quick one on the synthetic data of its own axes)
    else:
        assert quick_axes == full_axes
    assert quick.dataset.name == "synthetic" and quick.trainer.accelerator == "cpu"
    assert quick.model.width_multiplier <= 0.25 and quick.pretrain.epochs <= 4
    assert quick.hydra.sweep.dir == f"multirun_outputs/paper/quick/{name}/default"
    for cell in [job for job in sweep_jobs(quick) if "seed=1" in job]:  # every cell plans (no narrow-width
        plan = cell_plan(compose_settings(*cell)).to_dict()  # pruning error is left for the sweep to find)
        assert plan["cell"]["dataset"] == "synthetic"
        assert all(stage.get("epochs") is None or stage["epochs"] <= 40 for stage in plan["stages"])


@pytest.mark.parametrize(
    "row, epochs, milestones",
    [
        ("vgg16_a", 243, [121, 182]),
        ("resnet56_a", 178, [89, 133]),
        ("resnet56_b", 220, [110, 165]),
        ("resnet110_a", 190, [95, 142]),
        ("resnet110_b", 260, [130, 195]),
    ],
)
def test_l1_cifar10_scratch_b_epochs(row: str, epochs: int, milestones: list[int]) -> None:
    plan = plan_of("l1_cifar10", f"{ROW_KEY}={row}", "schedule=scratch_b")
    assert [s["name"] for s in plan["stages"]] == ["retrain"]  # predefined target: no large model needed
    assert (retrain(plan)["epochs"], retrain(plan)["milestones"]) == (epochs, milestones)
    finetune = plan_of("l1_cifar10", f"{ROW_KEY}={row}", "schedule=finetune")
    assert [s["name"] for s in finetune["stages"]] == ["pretrain", "retrain"]  # the Unpruned column's pretrain stage
    assert finetune["stages"][0]["epochs"] == 160 and retrain(finetune)["epochs"] == 40


@pytest.mark.parametrize("variant, epochs, milestones", [("A", 106, [35, 70, 105]), ("B", 118, [39, 78, 117])])
def test_l1_imagenet_resnet34_budgets(variant: str, epochs: int, milestones: list[int]) -> None:
    plan = plan_of("l1_imagenet_resnet34", f"pruner.variant={variant}", "schedule=scratch_b")
    assert (retrain(plan)["epochs"], retrain(plan)["milestones"]) == (epochs, milestones)
    assert plan["budget"]["cap"] == 2.0 and not plan["budget"]["capped"]
    assert retrain(plan_of("l1_imagenet_resnet34", f"pruner.variant={variant}"))["epochs"] == 20


@pytest.mark.parametrize(
    "variant, epochs, milestones",
    [("resnet41", 117, [35, 70, 105]), ("resnet32", 145, [43, 86, 129]), ("resnet26", 179, [53, 106, 159])],
)
def test_sss_imagenet_budgets(variant: str, epochs: int, milestones: list[int]) -> None:
    plan = plan_of("sss_imagenet", f"pruner.variant={variant}", "schedule=scratch_b")
    assert (retrain(plan)["epochs"], retrain(plan)["milestones"]) == (epochs, milestones)
    scratch_e = retrain(plan_of("sss_imagenet", f"pruner.variant={variant}", "schedule=scratch_e"))
    assert (scratch_e["epochs"], scratch_e["milestones"]) == (100, [30, 60, 90])


@pytest.mark.parametrize(
    "name, cell",
    [
        ("l1_imagenet_resnet34", ("pruner.variant=A", "schedule=finetune")),
        ("weight_level_imagenet", ("model=vgg16_bn", "schedule=scratch_e")),
        ("weight_level_imagenet", ("model=resnet50", "schedule=finetune")),
    ],
)
def test_imagenet_tables_prune_torchvision_weights_and_quick_ones_train_their_own(
    name: str, cell: tuple[str, ...]
) -> None:
    """The paper pruned torchvision's trained models: the pretrain stage imports them (the Unpruned column); the CPU
    miniatures train their own small large model."""
    imports = plan_of(name, *cell)["stages"][0]["imports"]
    weights = TORCHVISION_WEIGHTS[compose_config(f"experiment=paper/{name}", *cell).model.name]
    assert imports["file"].endswith("/hub/checkpoints/" + weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])
    quick = plan_of(f"quick/{name}", *cell)
    assert quick["stages"][0]["name"] == "pretrain" and "imports" not in quick["stages"][0]


def test_imagenet_recipes_of_slimming_and_weight_level() -> None:
    slim = compose_config("experiment=paper/slimming_imagenet_vgg11")
    assert slim.dataset.recipe.scratch_b_cap is None and slim.model.name == "vgg11_bn" and slim.pruner.ratio == 0.5
    assert retrain(plan_of("slimming_imagenet_vgg11"))["epochs"] == 5
    weight = plan_of("weight_level_imagenet", "model=resnet50", "pruner.ratio=0.6")
    assert retrain(weight)["epochs"] == 10 and weight["stages"][0]["epochs"] == 90
    assert compose_config("experiment=paper/weight_level_imagenet").dataset.recipe.scratch_b_cap is None


def test_slimming_rows_carry_their_ratio_and_head() -> None:
    plan = plan_of("slimming_cifar10", f"{ROW_KEY}=vgg19_slim70", "schedule=scratch_b")
    assert plan["pruning"]["requested"]["ratio"] == 0.7 and plan["pruning"]["decided_by_training"]
    assert compose_config("experiment=paper/slimming_cifar10", f"{ROW_KEY}=vgg19_slim70").model.head == "linear"
    heavy = plan_of("heavy_pruning_cifar10", f"{ROW_KEY}=preresnet164_slim90")
    assert heavy["pruning"]["requested"]["ratio"] == 0.9 and heavy["cell"]["model"] == "preresnet164"
    assert heavy["pruning"]["requested"]["on_empty"] == "remove_block"  # residual: an emptied layer's branch goes
    for name in ("heavy_pruning_cifar10", "heavy_pruning_cifar100"):  # DenseNet-40 has no residual blocks
        dense = plan_of(name, f"{ROW_KEY}=densenet40_slim80")
        assert dense["pruning"]["requested"]["on_empty"] == "keep_min" and dense["pruning"]["requested"]["ratio"] == 0.8
    quick = plan_of("quick/heavy_pruning_cifar10", f"{ROW_KEY}=preresnet164_slim80")
    assert quick["pruning"]["requested"]["on_empty"] == "remove_block"


def test_lottery_and_finetune_restart_schedules() -> None:
    lottery = plan_of("lottery_l1_cifar10", f"{ROW_KEY}=resnet110_b", "schedule=lottery", "schedule.lr=0.01")
    assert retrain(lottery)["init"] == "original" and retrain(lottery)["lr"] == 0.01
    assert (retrain(lottery)["epochs"], retrain(lottery)["milestones"]) == (160, [80, 120])
    random_init = plan_of("lottery_magnitude_cifar100", "model=preresnet110", "pruner.ratio=0.5", "schedule=scratch_e")
    assert retrain(random_init)["init"] == "random" and retrain(random_init)["lr"] == 0.1
    restart = retrain(plan_of("finetune_restart", f"{ROW_KEY}=vgg16_a", "schedule=finetune_restart"))
    assert (restart["epochs"], restart["lr"], restart["milestones"], restart["init"]) == (40, 0.01, [20], "pretrained")
    full = retrain(plan_of("finetune_restart", f"{ROW_KEY}=vgg16_a", "schedule=finetune_restart_full"))
    assert (full["epochs"], full["lr"], full["milestones"], full["init"]) == (160, 0.1, [80, 120], "pretrained")


def test_unpruned_cells_share_the_pretrain_stage_of_the_pruned_tables() -> None:
    """The baseline cell's large model is the pretrain stage of the L1-norm Fine-tuned cell (same recipe and model)."""
    baseline = plan_of("unpruned_cifar10", f"{ROW_KEY}=large_resnet56")
    finetune = plan_of("l1_cifar10", f"{ROW_KEY}=resnet56_a", "schedule=finetune")
    assert baseline["stages"] == finetune["stages"][:1]
    assert baseline["models"]["large"] == finetune["models"]["large"]


def test_slurm_launcher_preset() -> None:
    cfg = compose_with_hydra(
        "experiment=paper/l1_cifar10", "hydra/launcher=rethink_slurm", "hydra.launcher.partition=p"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "p"
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 720
    assert Path(CONF_DIR / "hydra" / "launcher" / "rethink_slurm.yaml").is_file()
