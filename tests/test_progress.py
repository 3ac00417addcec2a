"""Where the cells of a sweep stand: status files (running, done, reused, failed, interrupted, pending), the epochs of a
running cell, the sweep's job list, sweeps grouped, and real multiruns: a failing cell does not stop the others, and a
sweep killed and run again continues in its folder, reusing what was done."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose_settings
from test_paper_configs import EXPECTED_CELLS, compose_with_hydra
from test_sweeps import TINY, env, run

from rethink.pipeline import keys
from rethink.pipeline import status as run_status
from rethink.pipeline.estimate import stage_estimates
from rethink.pipeline.jobs import sweep_jobs
from rethink.pipeline.plan import build_plan
from rethink.results import progress


def _result(*statuses: str, top1: float = 91.5) -> dict:
    stages = [{"stage": name, "status": status} for name, status in zip(("pretrain", "prune", "retrain"), statuses)]
    return {"stages": stages, "accuracy": {"top1_final": top1}}


def test_a_cell_that_trained_nothing_is_reused_one_that_trained_is_done(tmp_path: Path) -> None:
    reused, done = tmp_path / "0_a", tmp_path / "1_b"
    for run_dir, statuses in ((reused, ("reused", "reused", "reused")), (done, ("reused", "reused", "computed"))):
        run_status.mark_running(run_dir, 0, ["seed=1"])
        assert progress.describe(run_dir, run_status.read_status(run_dir)).state == "running"  # this process is alive
        run_status.mark_finished(run_dir, _result(*statuses))
    assert run_status.read_status(reused)["state"] == "reused"
    cell = progress.describe(done, run_status.read_status(done))
    assert cell.state == "done"
    assert "top-1 91.50%" in cell.detail and "retrain computed" in cell.detail and "pretrain reused" in cell.detail
    assert run_status.read_status(done)["elapsed_s"] >= 0


def test_a_failed_cell_keeps_its_error_and_traceback(tmp_path: Path) -> None:
    run_status.mark_running(tmp_path, 3, ["seed=2"])
    run_status.mark_failed(tmp_path, "RuntimeError: boom\nsecond line", "Traceback (most recent call last):\n...")
    status = run_status.read_status(tmp_path)
    assert status["state"] == "failed" and status["job"] == 3 and status["overrides"] == ["seed=2"]
    assert (tmp_path / run_status.ERROR_LOG).read_text().startswith("Traceback")
    detail = progress.describe(tmp_path, status).detail
    assert detail.startswith("error: RuntimeError: boom  traceback: ") and "second line" not in detail


def test_a_running_cell_whose_process_is_gone_is_interrupted(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_status.mark_running(tmp_path, 0, [])
    status = {**run_status.read_status(tmp_path), "pid": int(finished.stdout)}
    (tmp_path / run_status.STATUS_FILE).write_text(json.dumps(status))
    cell = progress.describe(tmp_path, run_status.read_status(tmp_path))
    assert cell.state == "interrupted" and "run the sweep again" in cell.detail
    other_host = {**status, "host": "another-node"}  # a SLURM job elsewhere cannot be checked: still running
    assert progress.describe(tmp_path, other_host).state == "running"


def test_an_interrupted_cell_says_where_and_how_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_status.mark_running(run_dir, 0, [])
    assert run_status.mark_interrupted(run_dir, "SIGINT") == "before its first stage"
    run_status.mark_running(run_dir, 0, [])
    stage_dir = _stage_dir(tmp_path, 2)
    run_status.mark_stage(run_dir, "pretrain", stage_dir, 6, 0, 10)
    run_status.mark_stage(run_dir, "prune", tmp_path / "prune", 0, 6, 10)
    assert run_status.mark_interrupted(run_dir, "SIGTERM") == "during prune"
    run_status.mark_running(run_dir, 0, [])
    run_status.mark_stage(run_dir, "retrain", stage_dir, 4, 6, 10)  # 2 epochs ended: the 3rd was on
    assert run_status.mark_interrupted(run_dir, "SIGTERM") == "during retrain epoch 3 of 4"
    assert run_status.read_status(run_dir)["state"] == "interrupted"
    assert progress.main([str(run_dir)]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .endswith("SIGTERM during retrain epoch 3 of 4; run the same command again to resume")
    )


def test_jobs_without_a_status_are_pending_and_counted(tmp_path: Path) -> None:
    jobs = [[f"seed={seed}"] for seed in range(12)]
    sweep = tmp_path / "l1_cifar10" / "2026-11-25_05-00-00"  # a folder of sweeps is read as well as one sweep
    sweep.mkdir(parents=True)
    (sweep / progress.CELLS_FILE).write_text(json.dumps(jobs))
    for num in (10, 0, 2):
        run_status.mark_running(sweep / f"{num}_x", num, jobs[num])
        run_status.mark_finished(sweep / f"{num}_x", _result("computed"))
    run_status.mark_running(sweep / "1_x", 1, jobs[1])
    run_status.mark_failed(sweep / "1_x", "bad")
    cells = progress.sweep_cells(tmp_path)
    assert [c.name for c in cells[:4]] == ["0_x", "1_x", "2_x", "10_x"]  # job order, not name order
    assert [(c.state, c.overrides) for c in cells[4:]] == [
        ("pending", jobs[n]) for n in range(12) if n not in (0, 1, 2, 10)
    ]
    assert progress.tally(cells) == "12 cells: 3 done, 1 failed, 8 pending"


@pytest.mark.parametrize("name", sorted(EXPECTED_CELLS))
def test_the_job_list_of_every_paper_sweep_has_its_cells(name: str) -> None:
    jobs = sweep_jobs(compose_with_hydra(f"experiment=paper/{name}"))
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


def test_a_single_run_with_bad_input_leaves_no_folder_one_failing_later_keeps_its_status(tmp_path: Path) -> None:
    bad = run("rethink.main", *TINY, "model.width_multiplier=-1", cwd=tmp_path)  # the plan fails: no outputs/
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    assert "width_multiplier must be > 0, got -1" in bad.stderr
    assert list(tmp_path.iterdir()) == []
    run_dir = tmp_path / "run"  # the plan holds, the data file is missing: the run's folder records the failure
    no_data = run("rethink.main", *TINY, "dataset=cifar10", "dataset.npz_path=/no/such.npz", f"hydra.run.dir={run_dir}")
    assert no_data.returncode == 2, no_data.stderr[-3000:]
    assert run_status.read_status(run_dir)["state"] == "failed"


def _stage_dir(tmp_path: Path, ended_epochs: int) -> Path:
    """A training stage's artifact folder whose metrics.csv records ``ended_epochs`` evaluated epochs and a step of the
    next one."""
    stage_dir = tmp_path / "artifacts" / "pretrain" / "0123"
    stage_dir.mkdir(parents=True)
    rows = ["epoch,step,test/top1,train/loss_step"]
    rows += [f"{e},{e * 10 + 9},0.5," for e in range(ended_epochs)] + [f"{ended_epochs},{ended_epochs * 10 + 4},,2.3"]
    (stage_dir / "metrics.csv").write_text("\n".join(rows) + "\n")
    return stage_dir


def test_a_running_cell_shows_its_epochs_and_sweeps_are_listed_one_by_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "multirun_outputs"
    first, second = root / "paper" / "l1_cifar10" / "default", root / "sweep" / "seed=1,2"
    for sweep, jobs in ((first, [["seed=1"], ["seed=2"]]), (second, [["seed=1"], ["seed=2"]])):
        sweep.mkdir(parents=True)
        (sweep / progress.CELLS_FILE).write_text(json.dumps(jobs))
    running = first / "0_cifar10_vgg16_finetune_seed1"
    run_status.mark_running(running, 0, ["seed=1"])
    run_status.mark_stage(running, "retrain", _stage_dir(tmp_path, 12), 40, 160, 200)
    done = second / "1_cifar10_vgg16_baseline_seed2"
    run_status.mark_running(done, 1, ["seed=2"])
    run_status.mark_finished(done, _result("computed"))
    run_status.mark_stage(done, "pretrain", tmp_path, 160, 0, 160)  # a finished cell's record is left alone
    assert "stage" not in run_status.read_status(done)

    assert progress.main([str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        f"{root}: 2 sweeps, 4 cells: 1 done, 1 running, 2 pending",
        f"{first}: 2 cells: 1 running, 1 pending",
        f"  running     {running.name}  retrain epoch 12/40, cell 172/200 epochs",
        "  pending     job 1  seed=2",
        f"{second}: 2 cells: 1 done, 1 pending",
    ]
    assert lines[5].startswith(f"  done        {done.name}  top-1 91.50%  (pretrain computed)")
    assert lines[6:] == ["  pending     job 0  seed=1"]


def test_progress_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    jobs = [[f"seed={n}", "model=resnet56", "dataset=cifar10", "pruner=l1", "schedule=scratch_b"] for n in range(8000)]
    (tmp_path / progress.CELLS_FILE).write_text(json.dumps(jobs))  # ~500 KB of lines: far more than a pipe holds
    command = f"set -o pipefail; {sys.executable} -m rethink.progress {tmp_path} | head -1"
    proc = subprocess.run(["bash", "-c", command], env=env(), capture_output=True, text=True, timeout=120)
    assert proc.stdout == f"{tmp_path}: 8000 cells: 8000 pending\n"
    assert proc.stderr == "" and proc.returncode == 141  # as a Unix tool whose reader went away


SWEEP = [  # two cells: VGG-16-A fine-tuned (pretrain, prune, retrain) and trained from scratch (retrain only)
    *[o for o in TINY if not o.startswith("model=")],
    "+experiment/paper/row=vgg16_a",
    "dataset.recipe.finetune_epochs=1",
]


def _cells(outputs: Path) -> dict[Path, list[progress.CellStatus]]:
    return progress.sweeps(outputs) if outputs.is_dir() else {}


def _first_done_second_waiting(outputs: Path) -> bool:
    cells = [cell for sweep in _cells(outputs).values() for cell in sweep]
    return [c.state for c in cells] == ["done", "running"] and "retrain epoch" in cells[1].detail


def test_a_sweep_run_again_continues_in_its_folder_reusing_the_cells_done(tmp_path: Path) -> None:
    artifacts, outputs = tmp_path / "artifacts", tmp_path / "multirun_outputs"  # the default folder, under tmp_path
    command = ["-m", *SWEEP, "schedule=finetune,scratch_e", f"paths.artifact_dir={artifacts}"]
    cells = [[*SWEEP, f"schedule={s}", f"paths.artifact_dir={artifacts}"] for s in ("finetune", "scratch_e")]
    # the test holds the lock of the second cell's stage, so the sweep is killed once the first cell is done and
    # while the second one waits
    scratch = build_plan(compose_settings(*cells[1]))  # a predefined target from scratch: its key needs no decision
    lock_path = artifacts / "retrain" / f"{keys.retrain_key(scratch, scratch.retrain, None, scratch.pruned)}.lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock, open(tmp_path / "first.log", "w") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)
        first = subprocess.Popen(
            [sys.executable, "-m", "rethink.main", *command], cwd=tmp_path, env=env(), stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not _first_done_second_waiting(outputs):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    ((sweep, killed),) = _cells(outputs).items()
    assert sweep.parent == outputs / "sweep" and [c.state for c in killed] == ["done", "interrupted"]
    assert "retrain epoch 0/1, cell 0/1 epochs" in killed[1].detail

    again = run("rethink.main", *command, cwd=tmp_path)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rethink: 2 cells: 1 done, 1 reused" in again.stderr
    assert list(_cells(outputs)) == [sweep] and len([p for p in sweep.iterdir() if p.is_dir()]) == 2
    results = [json.loads((sweep / f"{n}_synthetic_vgg16_{s}_seed1" / "result.json").read_text()) for n, s in
               enumerate(("finetune", "scratch_e"))]  # fmt: skip
    assert {s["stage"]: s["status"] for s in results[0]["stages"]} == dict.fromkeys(
        ("pretrain", "prune", "retrain"), "reused"
    )
    assert results[1]["stages"][-1]["status"] == "computed"
    # a dry run now finds every stage of both cells stored (its keys are the runner's)
    assert all(e.stored for cell in cells for e in stage_estimates(build_plan(compose_settings(*cell))))


def test_a_sweep_line_says_how_long_the_remaining_cells_should_take() -> None:
    from rethink.results.progress import time_left

    assert time_left(2, 6, 50.0) == "  ~100 s left"  # 25 s per cell so far, 4 cells to go
    assert time_left(3, 10, 300.0) == "  ~12 min left"
    assert time_left(1, 100, 600.0) == "  ~16.5 h left"
    assert time_left(0, 6, 10.0) == time_left(6, 6, 10.0) == time_left(2, None, 10.0) == ""
