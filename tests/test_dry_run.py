"""Dry runs and sweep folders: a sweep's dry run plans every cell before any job, prints a table and the totals (or
one JSON document) and writes nothing; a single cell's dry run and a plan error leave no folder; the stage estimates
add up to the compute the paper tables' headers state."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CONF_DIR
from hydra import initialize_config_dir
from test_paper_configs import PAPER, compose_with_hydra
from test_sweeps import TINY, run

from rethink.pipeline.dry_run import plan_cell, render
from rethink.pipeline.estimate import totals
from rethink.pipeline.jobs import sweep_jobs

QUICK_L1 = ("experiment=paper/quick/l1_cifar10", "seed=1")  # 5 targets x 3 schedules


def test_a_sweep_dry_run_prints_its_cells_and_totals_and_writes_nothing(tmp_path: Path) -> None:
    proc = run("rethink.main", *QUICK_L1, "dry_run=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["job", "cell", "params", "FLOPs", "stages", "(epochs)", "stored"]
    rows = lines[1:16]
    assert [row.split()[0] for row in rows] == [str(n) for n in range(15)]
    assert rows[0].split()[1:4] == ["synthetic/vgg16/l1", "A/finetune", "seed=1"]
    assert rows[0].endswith("pretrain 1 > prune > retrain 1  -")  # nothing stored yet
    total = lines[16]
    # 3 large models (VGG-16, ResNet-56, ResNet-110: the A and B targets share theirs) + 15 retrainings
    assert total.startswith("total: 15 cells, 18 training stages (stages shared by cells counted once), ")
    assert "device-" in total and "on a GPU sustaining 20 TFLOP/s" in total
    assert lines[17].startswith("stored: 0 of 18 training stages; to compute: ")
    assert lines[-1].startswith("sweep folder: multirun_outputs/paper/quick/l1_cifar10/seed=1 ")
    assert list(tmp_path.iterdir()) == []  # no sweep folder, no cell folders, no artifact store


def test_a_sweep_dry_run_in_json_is_one_document(tmp_path: Path) -> None:
    proc = run("rethink.main", *QUICK_L1, "dry_run=json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout)
    assert document["sweep_dir"] == "multirun_outputs/paper/quick/l1_cifar10/seed=1"
    assert len(document["cells"]) == 15 and document["totals"]["stages"] == 18
    first = document["cells"][0]
    assert first["plan"]["cell"]["schedule"] == "finetune"
    assert [s["stage"] for s in first["stages"]] == ["pretrain", "prune", "retrain"]
    assert document["totals"]["train_flops"] == pytest.approx(
        sum({(s["stage"], s["key"]): s["train_flops"] for c in document["cells"] for s in c["stages"]}.values())
    )
    # one large model per (model, seed), whatever the pruner (A and B rows) and schedule: the Fine-tuned cells'
    # pretrain (Scratch cells of predefined targets train none)
    pretrains: dict[str, set[str]] = {}
    for cell in document["cells"]:
        for stage in cell["stages"]:
            if stage["stage"] == "pretrain":
                assert cell["plan"]["cell"]["schedule"] == "finetune"
                pretrains.setdefault(cell["plan"]["cell"]["model"], set()).add(stage["key"])
    assert {model: len(keys) for model, keys in pretrains.items()} == {"vgg16": 1, "resnet56": 1, "resnet110": 1}
    assert list(tmp_path.iterdir()) == []


def test_a_single_cell_dry_run_leaves_no_folder(tmp_path: Path) -> None:
    proc = run("rethink.main", "model=resnet56", "dataset=cifar10", "dry_run=json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["models"]["large"]["params"] == 853_018
    assert list(tmp_path.iterdir()) == []  # no outputs/


def test_cells_that_cannot_be_planned_are_listed_once_and_the_rest_still_counts() -> None:
    tiny = [o for o in TINY if not o.startswith("model.width")]
    jobs = [[*tiny, f"model.width_multiplier={w}", f"seed={s}"] for w in ("0.125", "-1") for s in (1, 2)]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cells = [plan_cell("config", [], num, job) for num, job in enumerate(jobs)]
    assert [c.error is None for c in cells] == [True, True, False, False]
    text = render(cells, "multirun_outputs/sweep/x").splitlines()
    assert text[3].split()[:3] == ["2", "model.width_multiplier=-1", "seed=1"] and "cannot be planned" in text[3]
    assert text[5].startswith("jobs 2, 3: error: model 'vgg11': width_multiplier must be > 0, got -1.")
    assert text[6].startswith("total: 4 cells, 2 training stages ")  # the two seeds' large models
    assert "2 cells cannot be planned (their errors are listed above)" in text


@pytest.mark.parametrize("name", ["sss_imagenet", "unpruned_imagenet", "thinet_imagenet"])
def test_the_totals_are_the_compute_the_table_header_states(name: str) -> None:
    """The experiment YAMLs state the compute of each table (`N GPU-hours = ... / 20 TFLOP/s sustained`); the dry
    run's totals count the same stages once (ThiNet's VGG-16 and ResNet-50 large models are shared by their rows)."""
    header = re.search(r"#\s+([\d,]+) GPU-hours = ", (PAPER / f"{name}.yaml").read_text())
    jobs = sweep_jobs(compose_with_hydra(f"experiment=paper/{name}"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cells = [plan_cell("config", [], num, job) for num, job in enumerate(jobs)]
    total = totals(cell.stages for cell in cells)
    assert total.cells == len(jobs) and total.unplanned == total.undecided == total.stored == 0
    assert round(total.device_hours) == int(header.group(1).replace(",", ""))


@pytest.mark.parametrize(
    "name, models_seeds",
    [
        # slimming's VGG-19 / CIFAR-100 and VGG-16 / CIFAR-10, 5 seeds (the quick sweep plans its cells by default)
        pytest.param("figure3_guided", 2 * 5, marks=pytest.mark.slow),
        pytest.param("figure3_slimming", 2 * 3 * 5, marks=pytest.mark.slow),  # 360 cells: about a minute
        # 650 cells; the union's transfer adds VGG-16 / CIFAR-10's large models (its source), 5 seeds
        pytest.param("figure3_weight_level", (2 * 3 + 1) * 5, marks=pytest.mark.slow),
    ],
)
def test_figure3_sweeps_plan_every_cell_and_count_each_large_model_once(name: str, models_seeds: int) -> None:
    """Every cell of the full Figure 3 sweeps plans; a guided or params-matched uniform cell lists its source cell's
    pretrain, which is the slimming cells' own: one large model per (data set, model, seed) in the totals, plus one
    retraining per cell (its architecture decided by training)."""
    jobs = sweep_jobs(compose_with_hydra(f"experiment=paper/{name}"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cells = [plan_cell("config", [], num, job) for num, job in enumerate(jobs)]
    total = totals(cell.stages for cell in cells)
    assert total.cells == len(jobs) and total.unplanned == 0
    assert total.stages == len(jobs) + models_seeds
    pretrains = {e.key for cell in cells for e in cell.stages if e.stage == "pretrain"}
    assert len(pretrains) == models_seeds
