"""Every config group is a plugin: a data set (24x24 images), a schedule (a fresh init, half the large model's epochs)
and a model for its own input size, all from tests/toy_plugins.py, compose by name on the plain command line with
``plugins=[toy_plugins]``, plan, dry-run and run end to end (with ``scratch_b`` on the toy data set too); the report,
in a process that never imports the plugin, titles them from result.json. Nothing under rethink/ compares a schedule
or data set name."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import toy_plugins  # noqa: F401  (registers the toy kinds in this process)
from conftest import REPO, compose_config, compose_settings

from rethink.data.registry import DATASETS
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.schedules import SCHEDULES

TOY = ("dataset=stripes24", "model=toynet24", "pruner=every_other", "trainer=cpu")
SCHEDULE_TITLE = "Scratch-half (half the epochs)"
DATASET_TITLE = "Stripes 24x24 (a toy procedural set)"


def _main(*args: str, cwd: Path, plugin: bool = True) -> subprocess.CompletedProcess:
    path = [str(REPO / "tests"), str(REPO)] if plugin else [str(REPO)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "WANDB_MODE": "offline", "RETHINK_PLUGINS": ""}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_toy_kinds_compose_by_name_and_plan() -> None:
    cfg = compose_config(*TOY, "schedule=scratch_half")
    assert cfg.dataset._target_ == "toy_plugins.Stripes" and cfg.schedule._target_ == "toy_plugins.HalfScratch"
    plan = build_plan(compose_settings(*TOY, "schedule=scratch_half", "pretrain.epochs=4"))
    assert plan.input_size == 24 and plan.settings.dataset.num_classes == 4
    assert [(s.name, s.init, s.recipe.epochs) for s in plan.stages] == [
        ("pretrain", "random", 4),
        ("retrain", "random", 2),
    ]
    wrong_size = r"model 'resnet56' is a CIFAR architecture for 32x32 inputs, but dataset 'stripes24' has 24x24 images"
    with pytest.raises(UserError, match=wrong_size + r"\. Pick a model for that input size, e\.g\. model=toynet24"):
        build_plan(compose_settings(*TOY, "model=resnet56", "schedule=scratch_half"))


def test_a_target_that_is_not_the_groups_kind_is_refused_by_name() -> None:
    with pytest.raises(UserError, match=r"schedule\._target_='toy_plugins\.Stripes' is not a Schedule subclass"):
        compose_settings(*TOY, "schedule=finetune", "schedule._target_=toy_plugins.Stripes", "~schedule.name")
    with pytest.raises(UserError, match=r"dataset\._target_='nosuch\.Data' cannot be imported"):
        compose_settings(*TOY, "schedule=finetune", "dataset._target_=nosuch.Data", "~dataset.name")
    with pytest.raises(UserError, match=r"schedule\.name='nosuch' \(str\) is not known; accepted: baseline, "):
        compose_settings(*TOY, "schedule=finetune", "schedule.name=nosuch", "~schedule._target_")


def test_the_toy_kinds_run_from_the_command_line_and_report_without_the_plugin(tmp_path: Path) -> None:
    common = (*TOY, "plugins=[toy_plugins]", "pretrain.epochs=2", f"paths.artifact_dir={tmp_path / 'store'}")
    dry = _main("-m", "rethink.main", *common, "schedule=scratch_b", "dry_run=json",
                f"hydra.run.dir={tmp_path / 'dry'}", cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    plan = json.loads(dry.stdout)
    cell = {"dataset": "stripes24", "model": "toynet24", "pruner": "every_other", "schedule": "scratch_b", "seed": 1}
    assert plan["cell"] == cell
    sweep = tmp_path / "sweep"
    run = _main("-m", "rethink.main", "-m", *common, "schedule=scratch_half,scratch_b", f"hydra.sweep.dir={sweep}",
                cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = {r["cell"]["schedule"]: r for r in map(json.loads, map(Path.read_text, sweep.rglob("result.json")))}
    half, scratch_b = results["scratch_half"], results["scratch_b"]
    assert [s["status"] for s in half["stages"]] == ["computed", "computed", "computed"]
    assert [s["status"] for s in scratch_b["stages"]] == ["reused", "reused", "computed"]  # one pretrain and decision
    assert half["epochs"] == 1 and scratch_b["budget"]["epochs"] == int(2 * scratch_b["budget"]["flops_ratio"])
    assert half["options"]["schedule"] == {"name": "scratch_half", "title": SCHEDULE_TITLE, "column_order": 8,
                                           "role": "scratch", "protocol": [], "states_recipe": False}  # fmt: skip
    assert half["options"]["dataset"]["title"] == DATASET_TITLE
    assert half["options"]["model"] == {"name": "toynet24", "family": "toy_chain",
                                        "title": "a toy conv chain for 24x24 images"}  # fmt: skip
    report = _main("-m", "rethink.report", str(sweep), "--out", str(tmp_path / "report"), cwd=tmp_path, plugin=False)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "### Every other channel (a toy)" in report.stdout
    header = next(line for line in report.stdout.splitlines() if line.startswith("| dataset |"))
    assert header.index(SCHEDULE_TITLE) > header.index("Scratch-B")  # its column order: after the paper's schedules
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"Data sets: {DATASET_TITLE} (stripes24)" in text
    assert "Models: toynet24 (a toy conv chain for 24x24 images; family toy_chain)" in text


def _compared_names(path: Path, names: set[str]) -> list[str]:
    """``file:line name`` for every comparison (==, !=, in, not in) of a string constant in ``names``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            elements = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            for element in elements:
                if isinstance(element, ast.Constant) and element.value in names:
                    found.append(f"{path.name}:{node.lineno} {element.value}")
    return found


def test_no_schedule_or_data_set_name_is_compared_in_the_engine_or_the_report(tmp_path: Path) -> None:
    names = set(SCHEDULES.classes) | set(DATASETS.classes)
    assert {"baseline", "finetune", "scratch_b", "cifar10", "imagenet"} <= names
    found = [
        hit
        for package in ("results", "pipeline", "training")
        for path in sorted((REPO / "rethink" / package).rglob("*.py"))
        for hit in _compared_names(path, names)
    ]
    assert found == []
    probe = tmp_path / "probe.py"  # the check finds a comparison when there is one
    probe.write_text('if cell["schedule"] == "baseline" or name in ("x", "imagenet"):\n    pass\n')
    assert [hit.split()[-1] for hit in _compared_names(probe, names)] == ["baseline", "imagenet"]
