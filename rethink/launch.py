"""One cell per device in a multirun (``launch.device_slots=N``): each job holds one of N device slots — an exclusive,
non-blocking ``flock`` on ``<sweep dir>/.device_slots/<i>.lock`` — for its whole run, so two concurrent jobs never
share a device whatever order the launcher starts them in; a job finding every slot held waits for one.

While a slot is held, the job's Lightning runs train on CUDA device ``i`` (``devices=[i]`` added to the trainer's
arguments as each stage builds its trainer, never to the hashed settings: a stage's key does not depend on the
device, so cells still share their stages). Hydra's joblib workers (loky) are reused from job to job, so the device
is chosen through Lightning and ``torch.cuda.set_device``, not ``CUDA_VISIBLE_DEVICES``, which CUDA reads only once per
process. On the CPU the slot is taken and recorded alike (simulated devices) and training stays on the CPU. The slot
is exported to the job as ``RETHINK_DEVICE_SLOT`` and recorded in ``result.json`` (``launch``) and in the ``device`` of
the stages the job computes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from rethink.errors import UserError
from rethink.settings.schema import Settings

log = logging.getLogger(__name__)

SLOT_ENV = "RETHINK_DEVICE_SLOT"
SLOTS_FOLDER = ".device_slots"
POLL_S = 1.0  # how often a job finding every slot held looks again

GPU_LAUNCHER = "hydra/launcher=rethink_gpus"  # conf/hydra/launcher/rethink_gpus.yaml: launch.device_slots jobs at once

_held: list[int] = []  # the slot this process's job holds (at most one)


def held_slot() -> int | None:
    """The device slot the running job holds; None when it runs unpinned."""
    return _held[-1] if _held else None


def on_cuda(arguments: Mapping[str, Any]) -> bool:
    """Whether a run with these trainer arguments trains on a CUDA GPU."""
    return torch.cuda.is_available() and str(arguments.get("accelerator", "auto")).lower() in ("auto", "gpu", "cuda")


def pinned_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's arguments, on the held slot's GPU when a slot is held and the run is on CUDA."""
    slot = held_slot()
    if slot is None or not on_cuda(arguments):
        return dict(arguments)
    return {**arguments, "devices": [slot]}


def check_pinning(settings: Settings, multirun: bool) -> None:
    """Refuse, before anything runs, a pinned job that cannot work: a single run, a cell on several devices or
    processes, more slots than visible GPUs (nothing to check without ``launch.device_slots``)."""
    slots, arguments = settings.launch.device_slots, settings.trainer.arguments
    if slots is None:
        return
    given = f"launch.device_slots={slots}"
    if not multirun:
        raise UserError(
            f"{given} shares a node's devices among the cells of a multirun, but this is a single run. Run the sweep "
            "with -m (e.g. hydra/launcher=rethink_gpus), or drop launch.device_slots and pick this run's GPU with "
            "trainer.devices=[i]."
        )
    for key, alone in (("devices", 1), ("num_nodes", 1), ("strategy", "auto")):
        value = arguments.get(key, alone)
        if value != alone:
            raise UserError(
                f"trainer.{key}={value!r} with {given}: a pinned cell trains in one process on the one device of its "
                f"slot. Set trainer.{key}={alone} (trainer=default or trainer=gpu), or drop launch.device_slots to "
                "train each cell on several devices (trainer=ddp)."
            )
    found = torch.cuda.device_count()
    if on_cuda(arguments) and slots > found:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise UserError(
            f"{given}, but this machine has {found} CUDA GPU(s) visible{where}: a slot would name a GPU that is not "
            f"there. Give launch.device_slots={found} (and hydra.launcher.n_jobs at most that)."
        )


def launcher_problem(overrides: list[str]) -> str | None:
    """The message for command-line ``overrides`` choosing the one-cell-per-GPU launcher without a slot count."""
    slots = [o.partition("=")[2] for o in overrides if o.startswith("launch.device_slots=")]
    if GPU_LAUNCHER not in overrides or (slots and slots[-1] not in ("", "null")):
        return None
    return (
        f"{GPU_LAUNCHER} runs one cell per device, launch.device_slots cells at once, but launch.device_slots is not "
        "given. Give the node's number of GPUs, e.g. launch.device_slots=8."
    )


@contextmanager
def device_slot(folder: Path, slots: int) -> Iterator[int]:
    """Hold the lowest free one of ``slots`` slots (``folder/<i>.lock``) for the block; wait while all are held."""
    folder.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for index in range(slots):
            handle = open(folder / f"{index}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if not waiting:
            log.warning("all %d device slots in %s are held; waiting for one to be released", slots, folder)
            waiting = True
        time.sleep(POLL_S)


@contextmanager
def pinned_job(settings: Settings, sweep_dir: Path | None) -> Iterator[int | None]:
    """Run the block on a device slot of the sweep ``sweep_dir`` (None: not a multirun) when ``launch.device_slots``
    is set; yields the slot (None: unpinned). The slot is released when the block ends, also on an error."""
    slots, arguments = settings.launch.device_slots, settings.trainer.arguments
    check_pinning(settings, sweep_dir is not None)
    if slots is None or sweep_dir is None:
        yield None
        return
    with device_slot(sweep_dir / SLOTS_FOLDER, slots) as slot:
        previous = os.environ.get(SLOT_ENV)
        os.environ[SLOT_ENV] = str(slot)
        _held.append(slot)
        try:
            if on_cuda(arguments):
                torch.cuda.set_device(slot)  # what runs outside Lightning (pinned loader memory) uses it too
            yield slot
        finally:
            _held.pop()
            if previous is None:
                os.environ.pop(SLOT_ENV, None)
            else:
                os.environ[SLOT_ENV] = previous
