"""Where the cells of a sweep stand: status files (running, done, reused, failed, interrupted, pending), the sweep's job
list, and a real multirun in which a failing cell does not stop the others and a re-launch reuses what was done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_paper_configs import EXPECTED_CELLS, compose_with_hydra
from test_sweeps import TINY, run

from rethink.results import progress


def _result(*statuses: str, top1: float = 91.5) -> dict:
    stages = [{"stage": name, "status": status} for name, status in zip(("pretrain", "prune", "retrain"), statuses)]
    return {"stages": stages, "accuracy": {"top1_final": top1}}


def test_a_cell_that_trained_nothing_is_reused_one_that_trained_is_done(tmp_path: Path) -> None:
    reused, done = tmp_path / "0_a", tmp_path / "1_b"
    for run_dir, statuses in ((reused, ("reused", "reused", "reused")), (done, ("reused", "reused", "computed"))):
        progress.mark_running(run_dir, 0, ["seed=1"])
        assert progress.describe(run_dir, progress.read_status(run_dir)).state == "running"  # this process is alive
        progress.mark_finished(run_dir, _result(*statuses))
    assert progress.read_status(reused)["state"] == "reused"
    cell = progress.describe(done, progress.read_status(done))
    assert cell.state == "done"
    assert "top-1 91.50%" in cell.detail and "retrain computed" in cell.detail and "pretrain reused" in cell.detail
    assert progress.read_status(done)["elapsed_s"] >= 0


def test_a_failed_cell_keeps_its_error_and_traceback(tmp_path: Path) -> None:
    progress.mark_running(tmp_path, 3, ["seed=2"])
    progress.mark_failed(tmp_path, "RuntimeError: boom\nsecond line", "Traceback (most recent call last):\n...")
    status = progress.read_status(tmp_path)
    assert status["state"] == "failed" and status["job"] == 3 and status["overrides"] == ["seed=2"]
    assert (tmp_path / progress.ERROR_LOG).read_text().startswith("Traceback")
    detail = progress.describe(tmp_path, status).detail
    assert detail.startswith("error: RuntimeError: boom  traceback: ") and "second line" not in detail


def test_a_running_cell_whose_process_is_gone_is_interrupted(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    progress.mark_running(tmp_path, 0, [])
    status = {**progress.read_status(tmp_path), "pid": int(finished.stdout)}
    (tmp_path / progress.STATUS_FILE).write_text(json.dumps(status))
    cell = progress.describe(tmp_path, progress.read_status(tmp_path))
    assert cell.state == "interrupted" and "run the sweep again" in cell.detail
    other_host = {**status, "host": "another-node"}  # a SLURM job elsewhere cannot be checked: still running
    assert progress.describe(tmp_path, other_host).state == "running"


def test_jobs_without_a_status_are_pending_and_counted(tmp_path: Path) -> None:
    jobs = [[f"seed={seed}"] for seed in range(12)]
    sweep = tmp_path / "l1_cifar10" / "2026-11-25_05-00-00"  # a folder of sweeps is read as well as one sweep
    sweep.mkdir(parents=True)
    (sweep / progress.CELLS_FILE).write_text(json.dumps(jobs))
    for num in (10, 0, 2):
        progress.mark_running(sweep / f"{num}_x", num, jobs[num])
        progress.mark_finished(sweep / f"{num}_x", _result("computed"))
    progress.mark_running(sweep / "1_x", 1, jobs[1])
    progress.mark_failed(sweep / "1_x", "bad")
    cells = progress.sweep_cells(tmp_path)
    assert [c.name for c in cells[:4]] == ["0_x", "1_x", "2_x", "10_x"]  # job order, not name order
    assert [(c.state, c.overrides) for c in cells[4:]] == [
        ("pending", jobs[n]) for n in range(12) if n not in (0, 1, 2, 10)
    ]
    assert progress.tally(cells) == "12 cells: 3 done, 1 failed, 8 pending"


@pytest.mark.parametrize("name", sorted(EXPECTED_CELLS))
def test_the_job_list_of_every_paper_sweep_has_its_cells(name: str) -> None:
    jobs = progress.sweep_jobs(compose_with_hydra(f"experiment=paper/{name}"))
    assert len(jobs) == EXPECTED_CELLS[name]
    assert len({tuple(job) for job in jobs}) == len(jobs)


def test_a_failing_cell_does_not_stop_the_sweep_and_a_relaunch_reuses_the_rest(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    cells = ["model.width_multiplier=0.125,-1", "seed=1,2", f"paths.artifact_dir={artifacts}"]
    first = run("rethink.main", "-m", *TINY, *cells, f"hydra.sweep.dir={tmp_path / 'first'}")
    assert first.returncode == 1, first.stderr[-3000:]
    lines = [line for line in first.stderr.splitlines() if line.startswith("rethink: ")]
    assert lines[0].startswith("rethink: sweep of 4 cells in ")
    assert "rethink: [0/4] running     0_synthetic_vgg11_baseline_seed1  model.width_multiplier=0.125 seed=1" in lines
    assert any(line.startswith("rethink: [1/4] done        0_synthetic_vgg11_baseline_seed1  top-1 ") for line in lines)
    failed = [line for line in lines if line.startswith("rethink: [4/4] failed      3_synthetic_vgg11_baseline_seed2")]
    assert failed and "width_multiplier must be > 0, got -1" in failed[0]
    assert "rethink: 4 cells: 2 done, 2 failed" in lines
    assert "Traceback" not in first.stderr
    assert "| synthetic | vgg11 |" in first.stdout  # the results table of what did finish

    second = run("rethink.main", "-m", *TINY, *cells, f"hydra.sweep.dir={tmp_path / 'second'}")
    assert "rethink: 4 cells: 2 reused, 2 failed" in second.stderr, second.stderr[-3000:]

    status = run("rethink.progress", str(tmp_path / "second"))
    assert status.returncode == 1
    assert status.stdout.startswith(f"{tmp_path / 'second'}: 4 cells: 2 reused, 2 failed\n")
    assert "  reused      1_synthetic_vgg11_baseline_seed2  top-1 " in status.stdout


def test_status_of_a_single_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    bad = run("rethink.main", *TINY, "model.width_multiplier=-1", f"hydra.run.dir={run_dir}")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert progress.read_status(run_dir)["state"] == "failed"
