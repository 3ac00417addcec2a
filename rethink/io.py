"""Atomic file writes: a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import torch


def _write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temp file in the same directory, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8)."""
    _write_atomic(path, lambda handle: handle.write(text.encode()))


def copy_file_atomic(source: str | Path, path: str | Path) -> None:
    """Atomically copy the file ``source`` to ``path``."""

    def write(handle: IO[bytes]) -> None:
        with open(source, "rb") as original:
            shutil.copyfileobj(original, handle)

    _write_atomic(path, write)


def save_tensors_atomic(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically ``torch.save`` a dict of tensors (moved to the CPU, contiguous whatever memory format they trained
    in), loadable with ``weights_only=True``."""
    cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    _write_atomic(path, lambda handle: torch.save(cpu, handle))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
