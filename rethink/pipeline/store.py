"""Content-addressed artifact store: ``<root>/<stage>/<key>/``, one directory per stage output.

A stage's key is a hash of everything that determines its output (OpenLTH's approach; :mod:`rethink.pipeline.keys`),
so cells that need the same pretrained or pruned model share it. An artifact is complete once its ``manifest.json``
(sha256 of every file) is written — last, atomically. A complete artifact whose files no longer match their
checksums is moved aside and recomputed, never reused. Concurrent processes take an exclusive file lock per
artifact, so a model is trained once.

``<root>/store.json`` records the key scheme the store's artifacts were written with. A store written by an older
scheme is reported once: its artifacts keep their directories but are never reused, because their keys no longer
match (they did not cover every setting).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rethink.distributed import is_distributed_follower
from rethink.io import write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STORE_FILE = "store.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Stage outputs under ``root/<stage>/<key>``, keyed by key scheme ``scheme``."""

    def __init__(self, root: str | Path, scheme: int) -> None:
        self.root = Path(root)
        self.scheme = scheme
        if not is_distributed_follower():
            self._note_scheme()

    def _note_scheme(self) -> None:
        """Record this store's key scheme; report once a store whose artifacts were written by an older one."""
        marker = self.root / STORE_FILE
        try:
            recorded = json.loads(marker.read_text()).get("key_scheme")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded == self.scheme:
            return
        if recorded is not None or next(self.root.glob(f"*/*/{MANIFEST}"), None) is not None:
            log.warning(
                "artifact store %s holds artifacts of an older key scheme (%s); they are not reused (their keys did "
                "not cover every setting) and can be deleted. This is reported once.",
                self.root,
                recorded or "1, rethink <= 0.1",
            )
        write_json_atomic(marker, {"key_scheme": self.scheme})

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
