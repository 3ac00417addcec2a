"""End-to-end command line: a training run, a dry run, and user errors without stack traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

NO_DATA = ("dataset=cifar10", "dataset.npz_path=/no/such/cifar.npz")  # reading it would fail: settings come first


def rethink(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "rethink.main", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


# what a default run must not print: Lightning's info lines and tips, library deprecations and advice that does not
# apply, the CSV logger's warning about a stage directory (init.pt is written first), W&B's deprecation of an
# argument Lightning passes, Hydra's launch lines (stderr, in sweeps)
NOISE = (
    "GPU available",
    "TPU available",
    "litlogger",
    "limit_train_batches",
    "LeafSpec",
    "logging interval",
    "will be deleted",
    "anonymous",
    "Launching",
)


def test_train_synthetic_cell_prints_its_result_and_no_noise(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = rethink(
        "dataset=synthetic",
        "model=vgg11",
        "model.width_multiplier=0.125",
        "trainer=cpu",
        "pretrain.epochs=1",
        f"hydra.run.dir={run_dir}",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["cell"]["model"] == "vgg11" and result["epochs"] == 1
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "pretrain" / "metrics.csv").is_file()
    assert proc.stdout.splitlines()[0].startswith("cell      synthetic / vgg11")  # the progress bar is on stderr
    assert proc.stdout.splitlines()[-1] == f"result:   {run_dir / 'result.json'}"
    assert "synthetic/vgg11/none/baseline seed 1 | pretrain | epoch 1/1" in proc.stderr
    assert [noise for noise in NOISE if noise in proc.stdout + proc.stderr] == []


def test_dry_run_prints_only_json(tmp_path: Path) -> None:
    proc = rethink("model=resnet110", "dataset=cifar10", "dry_run=true", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    assert plan["models"]["large"]["params"] == 1_727_962 and plan["stages"][0]["milestones"] == [80, 120]


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@pytest.mark.parametrize(
    "args, message",
    [
        # Hydra's own config errors too: one paragraph, the status of every user error
        (
            ["model=resnet57"],
            "rethink: error: model=resnet57: no such model option; the options are: densenet40, densenet_bc100, ",
        ),
        (["schedule=scratch_c"], "schedule=scratch_c: no such schedule option; the options are: baseline, "),
        (
            ["trainer.max_epochs=3"],
            "trainer.max_epochs is set by each stage itself; use pretrain.epochs (the large model's training) and "
            "schedule.epochs (the retraining), e.g. pretrain.epochs=3.",
        ),
        (["pretrain.epochs=ten"], "rethink: error: pretrain.epochs='ten' (str): expected an integer >= 1"),
        (
            ["dataset=cifar10", "dataset.npz_path=/no/such/cifar.npz"],
            "data file not found: dataset.npz_path='/no/such/cifar.npz'. Give it the data with the environment "
            "variable RETHINK_CIFAR10_NPZ=/path/to/cifar10.npz or the override dataset.npz_path=/path/to/cifar10.npz "
            "(an .npz with x_train, y_train, x_test, y_test), or put torchvision's cifar10 files under dataset.root",
        ),
        (
            ["dataset=synthetic", "pruner=l1", "model=resnet56"],
            "pruner=l1 with model 'resnet56': L1-norm target for 'resnet56': no target given. Name one of its "
            "predefined variants, pruner.variant=A or B, or give pruner.stage_ratios=[...]",
        ),
        pytest.param(
            ["dataset=synthetic", "trainer=gpu"],
            "rethink: error: trainer.accelerator=gpu asks for a GPU, but this machine has no CUDA GPU that torch can "
            "use (torch.cuda.is_available() is False). Run on the CPU with trainer=cpu.",
            marks=NO_GPU,
        ),
        (["dataset=imagenet", "model=resnet50", "dataset.root=/no/imagenet"], "has no train/ or val/ folder"),
        # typed settings, checked at the door: before the (missing) data would be read
        (
            [*NO_DATA, "pruner=magnitude", "pruner.ratio=abc"],
            "pruner.ratio='abc' (str): expected a number in [0, 1)",
        ),
        (
            [*NO_DATA, "pruner=magnitude", "pruner.raito=0.5"],
            "pruner.raito: no such setting, so pruner.raito=0.5 sets nothing; the settings of pruner are: _target_, "
            "name, ratio, round_ratio, rounds, scope. Check the spelling.",
        ),
        ([*NO_DATA, "pruner=magnitude", "+pruner.raito=0.5"], "pruner.raito: no such setting of pruner=magnitude"),
        ([*NO_DATA, "+pretrain.epoch=3"], "pretrain.epoch: no such setting; its settings are: epochs, lr"),
        (
            [*NO_DATA, "pruner=l1", "pruner.variant=A", "schedule=finetune", "schedule.epochs=-3"],
            "schedule.epochs=-3 (int): expected an integer >= 1",
        ),
    ],
)
def test_user_errors_are_one_message_without_traceback_and_status_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = rethink(*args, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    assert not (tmp_path / "result.json").exists()


def test_an_unknown_experiment_lists_the_available_ones(tmp_path: Path) -> None:
    proc = rethink("experiment=paper/l1_cifar11", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "experiment=paper/l1_cifar11: no such experiment" in proc.stderr
    assert "paper/l1_cifar10, paper/l1_imagenet_resnet34" in proc.stderr and "paper/quick/sss_imagenet" in proc.stderr
    assert "resnet56_a" not in proc.stderr  # row presets are listed for +experiment/paper/row only
    assert not (tmp_path / "run").exists()  # nothing ran


def test_unknown_experiment_names_in_sweeps_and_row_presets() -> None:
    from rethink.main import unknown_experiment

    assert unknown_experiment(["experiment=paper/l1_cifar10", "+experiment/paper/row=resnet56_a,vgg16_a"]) is None
    assert unknown_experiment(["experiment=null", "model=vgg16", "seed=1,2"]) is None
    problem = unknown_experiment(["+experiment/paper/row=resnet56_a,resnet57_a"])
    assert problem.startswith("+experiment/paper/row=resnet57_a: no such experiment") and "resnet56_b" in problem


def test_missing_torchvision_weights_stop_before_data_and_a_dry_run_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    cell = ("dataset=imagenet", "dataset.root=/no/imagenet", "model=resnet34", "pruner=l1", "pruner.variant=A")
    cell += ("schedule=finetune", "pretrain.weights=torchvision")
    proc = rethink(*cell, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert (
        "rethink: error: pretrain.weights=torchvision: torchvision's ImageNet weights of model 'resnet34'"
        in proc.stderr
    )
    assert f"expected {tmp_path / 'torch' / 'hub' / 'checkpoints'}/resnet34-" in proc.stderr
    assert "no train/ or val/" not in proc.stderr  # the plan stopped it, before any data was read
    dry = rethink(*cell, "dry_run=true", f"hydra.run.dir={tmp_path / 'dry'}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert json.loads(dry.stdout)["stages"][0]["imports"]["found"] is False
    assert not (tmp_path / "torch" / "hub" / "checkpoints").exists()
