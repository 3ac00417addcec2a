"""Every option of every config group composes; every model's dry-run plan is valid JSON; bad input is reported."""

from __future__ import annotations

import json

import pytest
from conftest import CONF_DIR, compose_config, compose_settings

from rethink.arch import MODELS
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.training.recipes import milestones_for

# the hydra group is applied by the CLI only (tests/test_cli.py)
GROUPS = ["dataset", "model", "pruner", "schedule", "trainer", "logger", "paths", "experiment"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]


def test_every_group_has_options() -> None:
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group: str, option: str) -> None:
    override = f"experiment={option}" if group == "experiment" else f"{group}={option}"
    cfg = compose_config(override)
    assert cfg[group]["name"] == option if group in ("dataset", "model", "pruner", "schedule") else cfg is not None


BUILTIN_MODELS = sorted(name for name, info in MODELS.items() if info.make_spec.__module__.startswith("rethink."))


def test_model_configs_name_registered_models() -> None:
    assert {p.stem for p in (CONF_DIR / "model").glob("*.yaml")} == set(BUILTIN_MODELS)  # (tests register toys too)


def _dataset_for(model: str) -> str:
    return "imagenet" if MODELS[model].domain == "imagenet" else "cifar10"


@pytest.mark.parametrize("model", BUILTIN_MODELS)
def test_dry_run_plan_of_every_model(model: str) -> None:
    settings = compose_settings(f"model={model}", f"dataset={_dataset_for(model)}", "dry_run=true")
    plan = json.loads(json.dumps(build_plan(settings).to_dict()))
    assert plan["cell"] == {
        "dataset": _dataset_for(model),
        "model": model,
        "pruner": "none",
        "schedule": "baseline",
        "seed": 1,
    }
    large = plan["models"]["large"]
    convention = "torch_flop_counter" if MODELS[model].domain == "any" else "paper"  # the graph family's counter
    assert large["flops"]["convention"] == convention
    assert large["params"] > 0 and large["flops"][convention] >= 2 * large["flops"]["macs"] * 0.99
    stage = plan["stages"][0]
    if _dataset_for(model) == "cifar10":
        assert (stage["epochs"], stage["milestones"], stage["lr"]) == (160, [80, 120], 0.1)
    else:
        assert (stage["epochs"], stage["milestones"], stage["lr"]) == (90, [30, 60], 0.1)


def test_dry_run_resnet56_numbers() -> None:
    plan = build_plan(compose_settings("model=resnet56", "dataset=cifar10")).to_dict()
    assert plan["models"]["large"]["params"] == 853_018
    assert abs(plan["models"]["large"]["flops"]["paper"] / 252.57e6 - 1) < 1e-3


def test_milestones_rule() -> None:
    assert milestones_for(160, None, [0.5, 0.75]) == [80, 120]
    assert milestones_for(90, None, [1 / 3, 2 / 3]) == [30, 60]
    assert milestones_for(243, None, [0.5, 0.75]) == [121, 182]  # int(), as the reference's Scratch-B
    assert milestones_for(10, [8, 3, 8], [0.5]) == [3, 8]
    assert milestones_for(2, None, [0.5, 0.75]) == [1]  # int(1.5) == int(1): one drop, not two


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.name=resnet57"], "unknown model 'resnet57'; accepted: densenet40"),
        (["pretrain.epochs=abc"], "pretrain.epochs='abc' (str): expected an integer >= 1"),
        (["pretrain.epochs=0"], "pretrain.epochs=0 (int): expected an integer >= 1"),
        (["pretrain.lr=-0.1"], "pretrain.lr=-0.1 (float): expected a number > 0.0"),
        (["pretrain.milestones=[80,x]"], "pretrain.milestones=[80, 'x'] (list): expected a list of non-negative"),
        (["dataset.batch_size=1.5"], "dataset.batch_size=1.5 (float): expected an integer >= 1"),
        (["dataset.train_subset=-5"], "dataset.train_subset=-5 (int): expected an integer >= 1 or null"),
        (["seed=one"], "seed='one' (str): expected an integer >= 0"),
        (["dataset.name=mnist"], "dataset.name='mnist' (str) is not known; accepted: cifar10, cifar100, digits"),
        (["schedule.name=finetuning"], "schedule.name='finetuning' (str) is not known; accepted: baseline, finetune"),
        (["pruner.name=l0"], "pruner.name='l0' (str) is not known; accepted: none, l1, thinet, regression, random"),
        (["model=resnet50", "dataset=cifar10"], "model 'resnet50' is an ImageNet architecture for 224x224 inputs"),
        (["model=resnet56", "dataset=imagenet"], "model 'resnet56' is a CIFAR architecture for 32x32 inputs"),
        (["model=resnet56", "+model.depth=20"], "model 'resnet56' got unknown option(s) depth"),
        (["model=vgg16", "model.head=conv"], "head must be 'mlp' or 'linear', got 'conv'. Fix the model.* override"),
        (["model=vgg16", "model.width_multiplier=-1"], "model 'vgg16': width_multiplier must be > 0, got -1"),
    ],
)
def test_bad_input_is_reported_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError) as err:
        build_plan(compose_settings(*overrides))
    assert message in str(err.value)
