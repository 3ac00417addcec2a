"""SIGINT and SIGTERM (Ctrl+C; what SLURM sends at pre-emption or the time limit) end a cell as *interrupted*:
:func:`interruptible` turns either signal into :class:`Interrupted`, which unwinds the cell without committing the
stage it was in (its epoch checkpoints stay for the re-run to resume from); the command line then records it and
exits 128 + the signal's number (130, 143), as a shell does for a process a signal ended. Under a submitit launcher
a SIGTERM'd cell is handed to submitit's pre-emption handler instead (:func:`requeue_under_submitit`)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal ended the cell. A BaseException, so no ``except Exception`` (a cell's error handling, Lightning's
    loops) takes it for a failure, and not a KeyboardInterrupt, which Lightning turns into a silent exit 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, _: FrameType | None) -> None:
    for other in SIGNALS:  # a second Ctrl+C or SIGTERM must not cut short recording the first
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise :class:`Interrupted`; the previous handlers come back after it.

    Lightning's fit keeps the handler (it calls the one it finds after its own SIGTERM notifier). Outside the main
    thread signals cannot be handled, and the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def requeue_under_submitit(signum: int) -> bool:
    """Under a submitit job (``hydra/launcher=submitit_slurm`` or ``submitit_local``) a SIGTERM is handed to submitit's
    own pre-emption handler: it saves the job (Hydra's launcher resubmits the same cell), requeues it — on SLURM with
    ``scontrol requeue`` — and exits; the requeued cell resumes from its last epoch checkpoint. Returns False (and
    does nothing) for SIGINT, outside submitit, or where submitit's handler is not installed."""
    if signum != signal.SIGTERM or not os.environ.get("SUBMITIT_EXECUTOR"):
        return False
    preempt = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)  # submitit's setting
    handler = signal.getsignal(preempt) if preempt is not None else None
    if not callable(handler):
        return False
    handler(preempt, None)
    return True
