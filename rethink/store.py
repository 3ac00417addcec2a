"""Content-addressed artifact store: ``<root>/<stage>/<key>/``, one directory per stage output.

A stage's key is a hash of everything that determines its output (OpenLTH's approach), so cells that need the same
pretrained or pruned model share it. An artifact is complete once its ``manifest.json`` (sha256 of every file) is
written — last, atomically. A complete artifact whose files no longer match their checksums is moved aside and
recomputed, never reused. Concurrent processes take an exclusive file lock per artifact, so a model is trained once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from rethink.io import write_json_atomic

log = logging.getLogger(__name__)

T = TypeVar("T")

MANIFEST = "manifest.json"
STORE_VERSION = 1  # bump when the meaning of stored files changes


def content_key(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable payload."""
    text = json.dumps({"store_version": STORE_VERSION, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_distributed_follower() -> bool:
    """True in DDP ranks other than 0: they follow rank 0 and never lock or write artifacts."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0


# Under Lightning's DDP launcher, ranks > 0 are started by rank 0's first ``Trainer.fit`` and re-run the cell from the
# top: stages rank 0 finished before that fit are complete artifacts they reuse without a process group; from that
# fit on, the process group is up and they follow rank 0 through these helpers (no-ops in a single process).


def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def leader_value(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, broadcast to every rank when a process group is up; else ``compute()`` locally."""
    if _group_size() == 1:
        return compute()
    import torch.distributed as dist

    box = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has committed an artifact the others read next)."""
    if _group_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def all_ranks(value: Any) -> list[Any]:
    """``value`` as each rank has it, in rank order (``[value]`` without a process group)."""
    if _group_size() == 1:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


class ArtifactStore:
    """Stage outputs under ``root/<stage>/<key>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def verify(self, path: Path) -> bool:
        """True when ``path`` holds a complete artifact whose files match the manifest; a corrupt one is moved aside."""
        manifest = path / MANIFEST
        if not manifest.is_file():
            return False
        try:
            files = json.loads(manifest.read_text())["files"]
            intact = all(sha256_file(path / name) == digest for name, digest in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if not intact and not is_distributed_follower():  # rank 0 moves it; a follower only reports it
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            log.warning("artifact %s failed its checksum; moved to %s and recomputing", path, aside)
            path.rename(aside)
        return intact

    def commit(self, path: Path, names: list[str], meta: dict[str, Any]) -> None:
        """Mark an artifact complete: checksum ``names`` (files already in ``path``) into the manifest."""
        files = {name: sha256_file(path / name) for name in names}
        write_json_atomic(path / MANIFEST, {"files": files, **meta})

    def manifest(self, path: Path) -> dict[str, Any]:
        return json.loads((path / MANIFEST).read_text())

    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[Path]:
        """Hold the artifact's exclusive lock (blocking) and yield its directory; DDP followers skip the lock."""
        path = self.path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_distributed_follower():
            yield path
            return
        with open(path.parent / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
