"""Shared fixtures: config composition without a subprocess, offline W&B, the real CIFAR-10 path from the env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import rethink.detection  # noqa: F401  (registers task=detection, as the entry point does)
from rethink.pipeline.config import load_settings
from rethink.settings.schema import Settings

os.environ["WANDB_MODE"] = "offline"  # tests never talk to W&B servers
os.environ.setdefault("WANDB_SILENT", "true")
# One intra-op thread (subprocesses too): on a shared 2-core machine two threads contending with any other process
# make small CPU kernels 10-30x slower; RETHINK_TEST_THREADS=2 on an idle machine.
os.environ.setdefault("RETHINK_TEST_THREADS", "1")
os.environ["OMP_NUM_THREADS"] = os.environ["RETHINK_TEST_THREADS"]
torch.set_num_threads(int(os.environ["RETHINK_TEST_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


def compose_config(*overrides: str) -> DictConfig:
    """The composed config of ``python -m rethink.main <overrides>``, in-process."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_main(*overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m rethink.main <overrides>`` as a user runs it (W&B offline); fails the test on a non-zero exit."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "rethink.main", *overrides]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_sweep(experiment: str, tmp_path: Path, timeout: int = 3000) -> tuple[subprocess.CompletedProcess, Path]:
    """``experiment=<experiment>`` run as a multirun with its sweep folder and store in ``tmp_path``."""
    out = tmp_path / "sweep"
    proc = run_main(f"experiment={experiment}", f"hydra.sweep.dir={out}", f"paths.artifact_dir={tmp_path / 'art'}",
                    timeout=timeout)  # fmt: skip
    return proc, out


def compose_settings(*overrides: str) -> Settings:
    """The validated settings of ``python -m rethink.main <overrides>``, in-process."""
    return load_settings(compose_config(*overrides))


@pytest.fixture(scope="session")
def cifar10_npz() -> Path:
    """The real CIFAR-10 .npz named by RETHINK_CIFAR10_NPZ (the Makefile points it at ../shared/data/cifar10)."""
    path = os.environ.get("RETHINK_CIFAR10_NPZ")
    if not path:
        pytest.skip("RETHINK_CIFAR10_NPZ is not set (make test sets it)")
    assert Path(path).is_file(), f"RETHINK_CIFAR10_NPZ={path} does not exist"
    return Path(path)


@pytest.fixture
def fit_starts(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, torch.Tensor] | None]:
    """Records the initial weights every training stage's ``fit`` starts from (stage name -> state dict; None for a
    fresh initialisation)."""
    import rethink.pipeline.runner as runner

    starts: dict[str, dict[str, torch.Tensor] | None] = {}
    real_fit = runner.fit

    def spy(run, stage, spec, recipe, work_dir, initial_state=None, *args, **kwargs):
        starts[stage] = initial_state
        return real_fit(run, stage, spec, recipe, work_dir, initial_state, *args, **kwargs)

    monkeypatch.setattr(runner, "fit", spy)
    return starts
