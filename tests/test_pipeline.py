"""Stages and the artifact store: reuse across cells, checksums, SIGKILL resume, one pretrain for two processes."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, compose_settings

from rethink.errors import UserError
from rethink.pipeline.result import run_cell

CELL = (
    "dataset=synthetic",
    "model=vgg16",
    "model.width_multiplier=0.125",
    "trainer=cpu",
    "pruner=l1",
    "pruner.variant=A",
)


def _statuses(result: dict) -> list[tuple[str, str]]:
    return [(s["stage"], s["status"]) for s in result["stages"]]


def test_cells_share_pretrain_and_prune_and_record_it(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    finetune = run_cell(compose_settings(*CELL, "schedule=finetune", store), tmp_path / "a")
    assert _statuses(finetune) == [("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")]
    lottery = run_cell(compose_settings(*CELL, "schedule=lottery", store), tmp_path / "b")
    assert _statuses(lottery) == [("pretrain", "reused"), ("prune", "reused"), ("retrain", "computed")]
    assert [s["key"] for s in lottery["stages"][:2]] == [s["key"] for s in finetune["stages"][:2]]
    again = run_cell(compose_settings(*CELL, "schedule=finetune", store), tmp_path / "c")
    assert _statuses(again)[-1] == ("retrain", "reused") and again["accuracy"] == finetune["accuracy"]
    scratch = run_cell(compose_settings(*CELL, "schedule=scratch_b", store), tmp_path / "d")
    assert [s for s, _ in _statuses(scratch)] == ["prune", "retrain"] and scratch["stages"][0]["key"] is None

    # each stage directory holds the config that made it; the prune artifact the kept channels
    prune_dir = Path(finetune["stages"][1]["path"])
    assert "variant: A" in (prune_dir / "config.yaml").read_text()
    keep = json.loads((prune_dir / "keep.json").read_text())
    assert {name: len(idx) for name, idx in keep.items()} == {
        n: w
        for n, w in finetune["pruning"]["widths"]["after"].items()
        if w != finetune["pruning"]["widths"]["before"][n]
    }


def test_lottery_starts_from_the_saved_initialisation_sliced(tmp_path: Path) -> None:
    result = run_cell(compose_settings(*CELL, "schedule=lottery", f"paths.artifact_dir={tmp_path}"), tmp_path / "run")
    pretrain, prune = (Path(s["path"]) for s in result["stages"][:2])
    init = torch.load(pretrain / "init.pt", weights_only=True)
    sliced = torch.load(prune / "init.pt", weights_only=True)
    keep = json.loads((prune / "keep.json").read_text())["features.0"]
    assert torch.equal(sliced["features.0.weight"], init["features.0.weight"][keep])
    trained = torch.load(pretrain / "weights.pt", weights_only=True)
    assert not torch.equal(trained["features.0.weight"], init["features.0.weight"])


def test_corrupted_artifact_is_detected_and_recomputed(tmp_path: Path) -> None:
    cfg = compose_settings(
        "dataset=synthetic",
        "model=vgg11",
        "model.width_multiplier=0.125",
        "trainer=cpu",
        f"paths.artifact_dir={tmp_path}",
    )
    first = run_cell(cfg, tmp_path / "a")
    weights = Path(first["stages"][0]["path"]) / "weights.pt"
    good = weights.read_bytes()
    weights.write_bytes(good[:-100])  # truncated
    second = run_cell(cfg, tmp_path / "b")
    assert _statuses(second) == [("pretrain", "computed")]
    assert weights.read_bytes() == good  # recomputed bit-exactly (deterministic CPU)
    assert len(list(weights.parent.parent.glob("*.corrupt-*"))) == 1  # the bad one kept aside, not reused


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rethink.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline"}


def _test_rows(metrics_csv: Path) -> list[tuple[str, str]]:
    """(epoch, test top-1) of every row of a stage's metrics.csv that holds a test accuracy."""
    with open(metrics_csv, newline="") as handle:
        return [(row["epoch"], row["test/top1"]) for row in csv.DictReader(handle) if row["test/top1"]]


PRETRAIN_6 = ("dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=6")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of the 6-epoch pretrain cell run without interruption."""
    root = tmp_path_factory.mktemp("uninterrupted")
    command = _cli(*PRETRAIN_6, f"paths.artifact_dir={root / 'store'}", f"hydra.run.dir={root / 'run'}")
    clean = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-2000:]
    return root / "run"


@pytest.mark.parametrize(
    "signum, exit_code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_a_stage_killed_or_interrupted_resumes_to_the_same_weights(
    tmp_path: Path, uninterrupted: Path, signum: int, exit_code: int
) -> None:
    store = tmp_path / "store"
    command = _cli(*PRETRAIN_6, f"paths.artifact_dir={store}", f"hydra.run.dir={tmp_path / 'run1'}")
    proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(store.glob("pretrain/*/checkpoints/last.ckpt")) and time.time() < deadline:
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == exit_code, stderr[-2000:]
    assert not list(store.glob("pretrain/*/manifest.json"))  # ended mid-stage: nothing committed
    if signum != signal.SIGKILL:  # a signal the cell can handle: said on one line and recorded in status.json
        name = signal.Signals(signum).name
        (line,) = [line for line in stderr.splitlines() if "interrupted" in line]
        assert re.fullmatch(
            rf"rethink: {name}: interrupted during pretrain epoch [1-6] of 6; run the same command again to resume",
            line,
        ), line
        status = json.loads((tmp_path / "run1" / "status.json").read_text())
        assert status["state"] == "interrupted" and status["signal"] == name
        assert status["interrupted"] == line.split("interrupted ")[1].split(";")[0]
    resumed = subprocess.run(
        command[:-1] + [f"hydra.run.dir={tmp_path / 'run2'}"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads((tmp_path / "run2" / "result.json").read_text())
    assert _statuses(result) == [("pretrain", "resumed")]
    a = torch.load(tmp_path / "run2" / "weights.pt", weights_only=True)
    b = torch.load(uninterrupted / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed stage's metrics.csv still holds the epochs trained before the kill, each once, as a clean run's
    resumed_rows = _test_rows(tmp_path / "run2" / "pretrain" / "metrics.csv")
    assert resumed_rows == _test_rows(uninterrupted / "pretrain" / "metrics.csv")
    assert [epoch for epoch, _ in resumed_rows] == ["0", "1", "2", "3", "4", "5"]


def test_two_processes_needing_one_pretrain_train_it_once(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    procs = [
        subprocess.Popen(
            _cli(*CELL, f"schedule={schedule}", store, f"hydra.run.dir={tmp_path / schedule}"),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for schedule in ("finetune", "lottery")
    ]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    pretrain = sorted(
        json.loads((tmp_path / s / "result.json").read_text())["stages"][0]["status"] for s in ("finetune", "lottery")
    )
    assert pretrain == ["computed", "reused"]


def test_imported_weights_are_checked_evaluated_and_pruned(tmp_path: Path) -> None:
    store = f"paths.artifact_dir={tmp_path / 'artifacts'}"
    trained = run_cell(compose_settings(*CELL, "schedule=finetune", store), tmp_path / "a")
    weights = Path(trained["stages"][0]["path"]) / "weights.pt"
    imported = run_cell(
        compose_settings(*CELL, "schedule=finetune", store, f"pretrain.weights={weights}"), tmp_path / "b"
    )
    assert _statuses(imported)[0] == ("pretrain", "imported")
    assert imported["stages"][0]["device"] == "cpu" and imported["stages"][0]["compute_s"] >= 0
    assert imported["stages"][0]["accuracy"]["top1_final"] == trained["stages"][0]["accuracy"]["top1_final"]
    assert imported["stages"][1]["key"] != trained["stages"][1]["key"]  # another upstream, another prune artifact


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not a checkpoint"), "cannot be read as tensors"),
        (lambda p: torch.save({"features.0.weight": torch.zeros(1)}, p), "does not fit model 'vgg16' (missing: "),
        (lambda p: torch.save([1, 2], p), "holds no state_dict of tensors"),
    ],
)
def test_bad_imported_weights_are_reported(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "weights.pt"
    make(path)
    cfg = compose_settings(*CELL, "schedule=finetune", f"paths.artifact_dir={tmp_path}", f"pretrain.weights={path}")
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        run_cell(cfg, tmp_path / "run")
    assert not (tmp_path / "pretrain").exists()  # refused before the store is touched: no stage folder, no lock


def test_structured_lottery_retraining_starts_from_the_sliced_original_init(tmp_path: Path, fit_starts: dict) -> None:
    starts = fit_starts
    result = run_cell(compose_settings(*CELL, "schedule=lottery", f"paths.artifact_dir={tmp_path}"), tmp_path / "run")
    original = torch.load(Path(result["stages"][0]["path"]) / "init.pt", weights_only=True)
    keep = json.loads((Path(result["stages"][1]["path"]) / "keep.json").read_text())
    conv = starts["retrain"]["features.0.weight"]  # conv1_1, pruned by half in VGG-16-A
    assert torch.equal(conv, original["features.0.weight"][keep["features.0"]])
    assert torch.equal(starts["retrain"]["features.3.weight"], original["features.3.weight"][:, keep["features.0"]])
