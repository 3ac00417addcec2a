"""Real multiruns from the command line: a quick paper table on Hydra's joblib launcher (the large model trained once
per seed, the report's numbers equal to the result files'), submitit's local launcher, and W&B offline runs."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import CONF_DIR, REPO

EXPERIMENTS = CONF_DIR / "experiment"

TINY = [
    "dataset=synthetic",
    "model=vgg11",
    "model.width_multiplier=0.125",
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.limit_train_batches=2",
    "pretrain.epochs=1",
]


def env(wandb_silent: bool = True) -> dict[str, str]:
    """A subprocess's environment: offline W&B (silent unless asked), full Hydra errors, this checkout's rethink from
    any working dir."""
    values = {
        **{k: v for k, v in os.environ.items() if k != "WANDB_SILENT"},  # conftest silences W&B for the suite
        "WANDB_MODE": "offline",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return values | ({"WANDB_SILENT": "true"} if wandb_silent else {})


def run(
    module: str, *args: str, timeout: int = 300, cwd: Path = REPO, wandb_silent: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env(wandb_silent),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def results(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.rglob("result.json"))]


def test_quick_paper_table_on_joblib_shares_the_large_model_and_reports_the_means(tmp_path: Path) -> None:
    sweep_dir, artifacts = tmp_path / "sweep", tmp_path / "artifacts"
    proc = run(
        "rethink.main",
        "experiment=paper/quick/l1_cifar10",
        "+experiment/paper/row=resnet56_a",  # command-line sweep values replace the config's
        "schedule=finetune,lottery",  # both retrain from the trained large model (scratch of L1 targets skips it)
        "seed=1,2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.artifact_dir={artifacts}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(sweep_dir)
    assert sorted((r["cell"]["schedule"], r["cell"]["seed"]) for r in found) == [
        ("finetune", 1),
        ("finetune", 2),
        ("lottery", 1),
        ("lottery", 2),
    ]
    assert {r["cell"]["model"] for r in found} == {"resnet56"} and {r["cell"]["dataset"] for r in found} == {
        "synthetic"
    }
    pretrain_status: dict[int, list[str]] = defaultdict(list)
    pretrain_keys: dict[int, set[str]] = defaultdict(set)
    for r in found:
        for stage in r["stages"]:
            if stage["stage"] == "pretrain":
                pretrain_status[r["cell"]["seed"]].append(stage["status"])
                pretrain_keys[r["cell"]["seed"]].add(stage["key"])
    for seed in (1, 2):  # one large model per seed, trained by whichever cell came first, reused by the other
        assert sorted(pretrain_status[seed]) == ["computed", "reused"], pretrain_status
        assert len(pretrain_keys[seed]) == 1
    assert pretrain_keys[1] != pretrain_keys[2]
    assert len(list((artifacts / "pretrain").glob("*/manifest.json"))) == 2

    report = run("rethink.report", str(sweep_dir))
    assert report.returncode == 0, report.stderr[-3000:]
    by_column: dict[str, list[float]] = defaultdict(list)
    for r in found:
        by_column[r["cell"]["schedule"]].append(r["accuracy"]["top1_best"])  # the report's default metric
        if r["cell"]["schedule"] == "finetune":  # the Unpruned column: the pretrain stage, once per seed
            (pretrain,) = [s for s in r["stages"] if s["stage"] == "pretrain"]
            by_column["unpruned"].append(pretrain["accuracy"]["top1_best"])
    for column, values in by_column.items():
        assert len(values) == 2
        mean, std = f"{statistics.mean(values):.2f}", f"{statistics.stdev(values):.2f}"
        assert mean in report.stdout and std in report.stdout, (column, mean, std, report.stdout)
    # the sweep printed a table too (rethink.results.report.SweepSummary, a Hydra callback)
    assert f"{statistics.mean(by_column['lottery']):.2f}" in proc.stdout
    # and, from the joblib workers, a line per cell as it ended, then the tally (rethink.results.progress.SweepProgress)
    ended = [line for line in proc.stderr.splitlines() if line.startswith("rethink: [") and " running " not in line]
    assert len(ended) == 4 and all(" done " in line for line in ended), proc.stderr[-3000:]
    assert "rethink: 4 cells: 4 done" in proc.stderr


@pytest.mark.slow  # SLURM's launcher run locally: two processes (~13 s); the joblib tests cover concurrent cells
def test_submitit_local_launcher_runs_two_cells(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = run(
        "rethink.main",
        "-m",
        *TINY,
        "seed=1,2",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(sweep_dir)
    assert sorted(r["cell"]["seed"] for r in found) == [1, 2]
    assert all(r["stages"][0]["status"] == "computed" for r in found)
    assert list(sweep_dir.glob(".submitit/*"))  # the jobs really went through submitit


@pytest.mark.slow  # submitit's local launcher, a cell trained twice (~30 s)
def test_a_sigtermed_cell_under_submitit_is_requeued_and_resumes(tmp_path: Path) -> None:
    sweep_dir, store = tmp_path / "sweep", tmp_path / "artifacts"
    cell = ["dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=6"]
    command = [sys.executable, "-m", "rethink.main", "-m", *cell, "hydra/launcher=submitit_local"]
    command += ["hydra.launcher.timeout_min=5", f"hydra.sweep.dir={sweep_dir}", f"paths.artifact_dir={store}"]
    proc = subprocess.Popen(command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(store.glob("pretrain/*/checkpoints/last.ckpt")) and time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before the cell's first checkpoint"
        time.sleep(0.05)
    (status_file,) = sweep_dir.glob("*/status.json")
    os.kill(json.loads(status_file.read_text())["pid"], signal.SIGTERM)  # the cell's own process, as SLURM does
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    (found,) = results(sweep_dir)  # the requeued job ran the same cell again, resuming its stage
    assert [s["status"] for s in found["stages"]] == ["resumed"]
    logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.err"))
    assert "SIGTERM: interrupted during pretrain epoch" in logs and "Requeued job" in logs, logs[-3000:]


def test_wandb_offline_runs_carry_group_and_job_type(tmp_path: Path) -> None:
    """W&B 0.31 offline runs store the run record (group, job type, name) only in the binary ``run-<id>.wandb``
    protobuf log (``files/`` holds output.log and requirements.txt); the strings are searched in its bytes."""
    artifacts = tmp_path / "artifacts"
    proc = run(
        "rethink.main",
        "-m",
        *[override for override in TINY if not override.startswith("model=")],
        "+experiment/paper/row=vgg16_a",  # VGG-16, L1-norm variant A
        "schedule=finetune",
        "logger=wandb",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.artifact_dir={artifacts}",
        wandb_silent=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb: " in proc.stderr and "anonymous" not in proc.stderr  # W&B speaks, without its deprecation warning
    assert "Launching 2 jobs locally" in proc.stderr and "Launching" not in proc.stdout  # Hydra's lines: stderr
    group = "synthetic/vgg16/l1 A/finetune"  # the cell of the paper's table; its seeds are the group's runs
    for seed in (1, 2):  # each cell's W&B runs (one per stage) lie in its own Hydra run directory
        (cell_dir,) = (tmp_path / "sweep").glob(f"*_seed{seed}")
        runs = sorted(cell_dir.glob("wandb/offline-run-*"))
        assert len(runs) == 3, runs
        names = set()
        for run_dir in runs:
            (log,) = run_dir.glob("run-*.wandb")
            record = log.read_bytes()
            assert group.encode() in record and b"experiment/paper/row=vgg16_a" in record  # a tag
            assert b"final/top1_final" in record  # the run summary (and the best epoch of a training stage)
            stages = ("pretrain", "prune", "retrain")
            names |= {stage for stage in stages if f"{group}/seed{seed}/{stage}".encode() in record}
            assert b"final/top1_best" in record or f"{group}/seed{seed}/prune".encode() in record
            debug = (run_dir / "logs" / "debug.log").read_text()
            assert "finishing run" in debug  # wandb.finish() ran: the run is complete and ready for `wandb sync`
        assert names == {"pretrain", "prune", "retrain"}  # prune: the pruned model evaluated before retraining
    assert not list(artifacts.rglob("wandb"))  # nothing of W&B's inside the shared artifact store


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    sorted(str(p.relative_to(EXPERIMENTS).with_suffix("")) for p in EXPERIMENTS.glob("**/quick/*.yaml")),
)
def test_every_quick_paper_table_runs_in_full(name: str, tmp_path: Path) -> None:
    """Every cell of the CPU miniature of each paper table (and of experiment=selection_cifar10) trains and lands in
    the report (`make test-slow`)."""
    sweep_dir = tmp_path / "sweep"
    proc = run(
        "rethink.main",
        f"experiment={name}",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
        timeout=1800,
    )
    jobs = json.loads((sweep_dir / "cells.json").read_text())
    assert proc.returncode == 0, proc.stderr[-3000:]
    tally = [line for line in proc.stderr.splitlines() if line.startswith(f"rethink: {len(jobs)} cells: ")]
    assert tally and "failed" not in tally[0] and "pending" not in tally[0], proc.stderr[-3000:]
    found = results(sweep_dir)
    assert len(found) == len(jobs)
    # every stage computed by one cell only, the others reuse it; Table 1: one large model per (model, seed) across
    # the pruners (A and B rows) and schedules (measured: 6 computed = 3 models x 2 seeds, 4 reused)
    computed = [(s["stage"], s["key"]) for r in found for s in r["stages"] if s["status"] == "computed"]
    assert len(computed) == len(set(computed))
    if name == "paper/quick/l1_cifar10":
        pretrains = [(r["cell"]["model"], r["cell"]["seed"], s) for r in found for s in r["stages"]]
        statuses = [(model, seed, s["status"]) for model, seed, s in pretrains if s["stage"] == "pretrain"]
        trained = sorted((model, seed) for model, seed, status in statuses if status == "computed")
        assert trained == sorted({(model, seed) for model, seed, _ in statuses}) and len(trained) == 6
        assert sorted(status for *_, status in statuses) == ["computed"] * 6 + ["reused"] * 4
    report = run("rethink.report", str(sweep_dir), "--out", str(tmp_path / "report"))
    assert report.returncode == 0 and "rethink.report:" not in report.stderr.replace("rethink.report: wrote", "")
