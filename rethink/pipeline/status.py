"""A cell's ``status.json`` in its run directory, written as it runs: running (with host and pid, and the stage it is
in), done, reused, failed (the traceback of an unexpected error in ``error.log`` beside it) or interrupted (by SIGINT or
SIGTERM, and where). :mod:`rethink.results.progress` reads them to say where a sweep stands."""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from rethink.io import write_json_atomic, write_text_atomic

STATUS_FILE = "status.json"
ERROR_LOG = "error.log"
TRAINED = ("computed", "resumed", "imported")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def mark_running(run_dir: Path, job: int | None, overrides: list[str]) -> None:
    """Record that the cell in ``run_dir`` has started (with this host and pid, to tell a killed job later)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    status = {"state": "running", "job": job, "overrides": overrides, "host": socket.gethostname(), "pid": os.getpid()}
    write_json_atomic(run_dir / STATUS_FILE, {**status, "started": _now(), "started_unix": time.time()})


def _update(run_dir: Path, **fields: Any) -> None:
    status = read_status(run_dir) or {}
    ended = time.time()
    elapsed = round(ended - status["started_unix"], 3) if "started_unix" in status else None
    write_json_atomic(run_dir / STATUS_FILE, {**status, **fields, "ended": _now(), "elapsed_s": elapsed})


def mark_stage(run_dir: Path, stage: str, stage_dir: Path, epochs: int, done: int, total: int | None) -> None:
    """Record the training stage a running cell is in: its artifact directory (whose ``metrics.csv`` tells the epochs
    trained so far) and ``epochs``, the cell's epochs ``done`` in earlier stages and its ``total`` (None: decided by
    training). A cell without a running status record (one run outside ``rethink.main``) is left alone."""
    status = read_status(run_dir)
    if status is None or status.get("state") != "running":
        return
    current = {"name": stage, "dir": str(stage_dir), "epochs": epochs, "cell_done": done, "cell_total": total}
    write_json_atomic(run_dir / STATUS_FILE, {**status, "stage": current})


def epochs_trained(stage_dir: Path) -> int:
    """Epochs of a stage that have ended (evaluated), from its ``metrics.csv``; 0 when there is none yet."""
    try:
        with open(stage_dir / "metrics.csv", newline="") as handle:
            ended = [int(float(row["epoch"])) for row in csv.DictReader(handle) if row.get("test/top1")]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return max(ended, default=-1) + 1


def mark_finished(run_dir: Path, result: dict[str, Any]) -> None:
    """Record a finished cell: reused (nothing trained) or done, its stages' statuses and final top-1."""
    stages = {s["stage"]: s["status"] for s in result["stages"]}
    state = "done" if any(s in TRAINED for s in stages.values()) else "reused"
    score = {"top1": result["accuracy"].get("top1_final")} if "accuracy" in result else {}
    if "detection" in result:  # task=detection: the final detector's VOC07 mAP@0.5
        score = {"map50": result["detection"]["final"].get("voc07_map_50")}
    _update(run_dir, state=state, stages=stages, **score)


def mark_failed(run_dir: Path, error: str, traceback_text: str | None = None) -> None:
    """Record a failed cell; the traceback (of an unexpected error) goes to ``error.log`` beside it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if traceback_text:
        write_text_atomic(run_dir / ERROR_LOG, traceback_text)
    _update(run_dir, state="failed", error=error, error_log=str(run_dir / ERROR_LOG) if traceback_text else None)


def mark_interrupted(run_dir: Path, signal_name: str) -> str:
    """Record that ``signal_name`` ended the cell and return where it was: ``during pretrain epoch 3 of 6`` (the
    epoch under way when it came), ``during prune`` (a stage that trains none), ``before its first stage``."""
    status = read_status(run_dir) or {}
    stage = status.get("stage")
    where = "before its first stage"
    if isinstance(stage, dict):
        epochs = stage.get("epochs") or 0
        epoch = min(epochs_trained(Path(str(stage.get("dir")))) + 1, epochs)
        where = f"during {stage.get('name')}" + (f" epoch {epoch} of {epochs}" if epochs else "")
    _update(run_dir, state="interrupted", signal=signal_name, interrupted=where)
    return where


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The cell's status record, or None when there is none (or it is unreadable)."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None
