"""Where each cell of a sweep stands: ``status.json`` in every run directory (running, done, reused, failed,
interrupted), a line per cell on stderr while a sweep runs (:class:`SweepProgress`, a Hydra callback), a tally at its
end, and ``python -m rethink.progress DIR...`` at any time, also for cells still pending or left by a killed job,
grouped per sweep, with the epochs a running cell has trained (its running stage's ``metrics.csv``) of those its plan
holds.

A cell is *reused* when it trained nothing (every stage came from the artifact store), *done* when it trained
something, *failed* with its error (and the traceback in ``error.log`` beside it for anything but a user error),
*interrupted* when SIGINT or SIGTERM ended it (or its process is gone while it was running).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from rethink.io import write_json_atomic
from rethink.pipeline.jobs import sweep_jobs
from rethink.pipeline.status import STATUS_FILE, epochs_trained, read_status

CELLS_FILE = "cells.json"  # in a sweep directory: every job's overrides, in job-number order
STATES = ("done", "reused", "failed", "running", "interrupted", "pending")


def _alive(status: dict[str, Any]) -> bool:
    """False only when the job ran on this host and its process is gone; other hosts cannot be checked."""
    if status.get("host") != socket.gethostname() or not isinstance(status.get("pid"), int):
        return True
    try:
        os.kill(status["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class CellStatus:
    """One cell of a sweep as the status files (and the sweep's job list) show it."""

    state: str
    name: str
    overrides: list[str]
    detail: str = ""

    def line(self) -> str:
        return f"{self.state:<11} {self.name}" + (f"  {self.detail}" if self.detail else "")


def describe(run_dir: Path, status: dict[str, Any]) -> CellStatus:
    """A status record as a state and a one-line detail (stage statuses, accuracy, time, or the error)."""
    state = status.get("state", "running")
    if state == "running" and not _alive(status):
        state = "interrupted"
    parts = []
    if state == "failed":
        parts.append(f"error: {str(status.get('error', '?')).splitlines()[0]}")
        parts += [f"traceback: {status['error_log']}"] if status.get("error_log") else []
    if isinstance(status.get("top1"), (int, float)):
        parts.append(f"top-1 {status['top1']:.2f}%")
    if isinstance(status.get("map50"), (int, float)):
        parts.append(f"mAP@0.5 {status['map50']:.2f}%")
    if status.get("stages"):
        parts.append("(" + ", ".join(f"{k} {v.split(':')[0]}" for k, v in status["stages"].items()) + ")")
    if isinstance(status.get("elapsed_s"), (int, float)):
        parts.append(f"{status['elapsed_s']:.1f} s")
    if state == "interrupted" and status.get("signal"):
        parts.append(f"{status['signal']} {status.get('interrupted', '')}; run the same command again to resume")
    elif state in ("running", "interrupted") and isinstance(status.get("stage"), dict):
        parts.append(_stage_progress(status["stage"]))
    if state == "interrupted" and not status.get("signal"):
        parts.append(f"process {status.get('pid')} is gone; run the sweep again to finish it")
    return CellStatus(state, run_dir.name, list(status.get("overrides") or []), "  ".join(parts))


def _stage_progress(stage: dict[str, Any]) -> str:
    """``pretrain epoch 12/160, cell 12/200 epochs``: the running stage's epochs trained and the cell's."""
    trained = epochs_trained(Path(str(stage.get("dir"))))
    done, total = stage.get("cell_done") or 0, stage.get("cell_total")
    if not stage.get("epochs"):  # a stage that trains nothing (prune, import)
        return f"{stage.get('name')}, cell {done}/{'?' if total is None else total} epochs"
    return (
        f"{stage.get('name')} epoch {trained}/{stage.get('epochs')}, "
        f"cell {done + trained}/{'?' if total is None else total} epochs"
    )


def _sweep_of(run_dir: Path, root: Path) -> Path:
    """The sweep a run directory belongs to: the nearest folder (within ``root``) holding the sweep's ``cells.json``;
    for a run outside any sweep, ``root`` when that is the run itself, else the run's parent folder."""
    for folder in [run_dir, *run_dir.parents]:
        if (folder / CELLS_FILE).is_file():
            return folder
        if folder == root:
            break
    return root if run_dir == root else run_dir.parent


def sweeps(root: Path) -> dict[Path, list[CellStatus]]:
    """Every cell under ``root`` (a sweep, a run, or a folder of sweeps), grouped by sweep (in path order), each in job
    order: those with a status file, then the sweep's jobs that have not started (from its ``cells.json``)."""
    found = [(f.parent, read_status(f.parent)) for f in root.rglob(STATUS_FILE)]
    found = sorted(((d, s) for d, s in found if s is not None), key=lambda ds: (_job(ds[1]), ds[0]))
    groups: dict[Path, list[tuple[Path, dict[str, Any]]]] = {}
    for run_dir, status in found:
        groups.setdefault(_sweep_of(run_dir, root), []).append((run_dir, status))
    for jobs_file in root.rglob(CELLS_FILE):
        groups.setdefault(jobs_file.parent, [])
    cells: dict[Path, list[CellStatus]] = {}
    for sweep in sorted(groups):
        cells[sweep] = [describe(run_dir, status) for run_dir, status in groups[sweep]]
        seen = {json.dumps(status.get("overrides")) for _, status in groups[sweep]}
        for num, overrides in enumerate(_jobs(sweep) or []):
            if json.dumps(overrides) not in seen:
                cells[sweep].append(CellStatus("pending", f"job {num}", overrides, " ".join(overrides)))
    return cells


def sweep_cells(root: Path) -> list[CellStatus]:
    """Every cell under ``root``, sweep by sweep (:func:`sweeps`)."""
    return [cell for cells in sweeps(root).values() for cell in cells]


def _job(status: dict[str, Any]) -> int:
    return status["job"] if isinstance(status.get("job"), int) else -1


def tally(cells: list[CellStatus]) -> str:
    """``12 cells: 8 done, 3 reused, 1 failed``."""
    counts = {state: sum(c.state == state for c in cells) for state in STATES}
    return f"{len(cells)} cells: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n)


class SweepProgress(Callback):
    """Hydra callback: the number of cells at a sweep's start, a line per cell as it starts and ends, and the tally at
    the end (after the results table); the sweep exits with status 1 when a cell failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sweep_jobs(config)
        if jobs is not None:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(sweep_dir / CELLS_FILE, jobs)
        count = "" if jobs is None else f" of {len(jobs)} cells"
        _say(f"sweep{count} in {sweep_dir}; `python -m rethink.progress {sweep_dir}` shows where it stands")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            run_dir = Path(config.hydra.runtime.output_dir)
            swept = " ".join(_swept(config, list(config.hydra.overrides.task)))
            _say(f"{_counter(config)} {'running':<11} {run_dir.name}  {swept}".rstrip())

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.runtime.output_dir)
        status = read_status(run_dir)
        if config.hydra.mode == RunMode.MULTIRUN and status is not None:
            finished, total, since = _finished(config)
            left = time_left(finished, total, time.time() - since) if since else ""
            _say(f"{_counter(config)} {describe(run_dir, status).line()}{left}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        cells = sweep_cells(Path(config.hydra.sweep.dir))
        _say(tally(cells))
        failed = [c for c in cells if c.state == "failed"]
        for cell in failed:
            _say(f"  {cell.line()}")
        if failed:
            sys.exit(1)


def _jobs(sweep_dir: Path) -> list[list[str]] | None:
    try:
        return json.loads((sweep_dir / CELLS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _swept(config: DictConfig, overrides: list[str]) -> list[str]:
    """The job's overrides that differ between the sweep's jobs (what tells this cell from the others)."""
    jobs = _jobs(Path(config.hydra.sweep.dir))
    if not jobs:
        return []
    common = set(jobs[0]).intersection(*map(set, jobs[1:]))
    return [o for o in overrides if o not in common]


def _finished(config: DictConfig) -> tuple[int, int | None, float]:
    """Cells of this sweep finished so far (any process), all of its cells (None: unknown), and when this run of the
    sweep started (it wrote ``cells.json``); a sweep run again in its folder counts only the cells finished since."""
    sweep_dir = Path(config.hydra.sweep.dir)
    jobs = _jobs(sweep_dir)
    try:
        since = (sweep_dir / CELLS_FILE).stat().st_mtime
    except OSError:
        since = 0.0
    statuses = [read_status(f.parent) or {} for f in sweep_dir.rglob(STATUS_FILE)]
    finished = sum(
        s.get("state") in ("done", "reused", "failed") and s.get("started_unix", 0) >= since for s in statuses
    )
    return finished, None if jobs is None else len(jobs), since


def _counter(config: DictConfig) -> str:
    """``[5/12]``: :func:`_finished` over all of the sweep's cells."""
    finished, total, _ = _finished(config)
    return f"[{finished}/{'?' if total is None else total}]"


def time_left(finished: int, total: int | None, elapsed_s: float) -> str:
    """``  ~12 min left``: the remaining cells at this run's mean time per finished cell ("" when unknown)."""
    if not finished or total is None or finished >= total:
        return ""
    seconds = elapsed_s / finished * (total - finished)
    text = (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )
    return f"  ~{text} left"


def _say(message: str) -> None:
    """One line on stderr in one write, so lines of concurrent sweep workers never interleave."""
    sys.stderr.write(f"rethink: {message}\n")
    sys.stderr.flush()


def _print_state(directory: Path) -> bool:
    """Print the cells under ``directory`` sweep by sweep (a folder of several sweeps: their overall tally first);
    True when a cell failed."""
    groups = sweeps(directory)
    everything = [cell for cells in groups.values() for cell in cells]
    if not everything:
        print(f"{directory}: no cells (no status.json and no cells.json)")
        return False
    if len(groups) > 1:
        print(f"{directory}: {len(groups)} sweeps, {tally(everything)}")
    for sweep, cells in groups.items():
        print(f"{sweep}: {tally(cells)}")
        for cell in cells:
            print(f"  {cell.line()}")
    return any(c.state == "failed" for c in everything)


def main(argv: list[str] | None = None) -> int:
    """CLI: the state of every cell under the given sweep (or run) directories; 1 when a cell failed. When the reader
    of stdout goes away (``| head``) it stops quietly with status 141, as a Unix tool killed by SIGPIPE."""
    parser = argparse.ArgumentParser(prog="python -m rethink.progress", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="sweep or run directories, or folders of them")
    args = parser.parse_args(argv)
    failed = False
    try:
        for directory in map(Path, args.dirs):
            if not directory.is_dir():
                print(f"rethink.progress: {directory}: no such directory", file=sys.stderr)
                failed = True
                continue
            failed |= _print_state(directory)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141
    return 1 if failed else 0
