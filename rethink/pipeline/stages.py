"""The one path every stage takes (pretrain, prune, the rounds of iterative pruning, retrain): lock the artifact,
verify it, reuse it or compute (resuming from its checkpoints) it, commit it atomically. Reuse, resume and corruption
handling are written here once."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rethink.distributed import barrier, is_distributed_follower, leader_value
from rethink.io import write_text_atomic
from rethink.pipeline.store import ArtifactStore


@dataclass
class Produced:
    """What a stage's computation wrote into its directory (``files``) and gives back (``payload``)."""

    files: list[str]
    payload: Any
    status: str = "computed"  # computed | resumed | imported
    meta: dict[str, Any] = field(default_factory=dict)  # extra facts for the manifest and the stage record


@dataclass
class Outcome:
    """A stage as it ended: its key and directory, how it was obtained, and its payload."""

    stage: str
    key: str
    path: Path
    status: str  # computed | resumed | imported | reused
    payload: Any
    meta: dict[str, Any] = field(default_factory=dict)


class StagePath:
    """Runs stages against an artifact store; each committed artifact also keeps the config that made it."""

    def __init__(self, store: ArtifactStore, config_yaml: str) -> None:
        self.store = store
        self.config_yaml = config_yaml

    def run(self, stage: str, key: str, compute: Callable[[Path], Produced], load: Callable[[Path], Any]) -> Outcome:
        """Reuse the complete artifact ``stage/key`` (``load`` reads it), or ``compute`` it into its directory and
        commit it. Under DDP every rank calls this: rank 0 decides reuse, locks and writes; the others follow."""
        with self.store.lock(stage, key) as path:
            if leader_value(lambda: self.store.verify(path)):
                meta = {k: v for k, v in self.store.manifest(path).items() if k not in ("files", "stage")}
                return Outcome(stage, key, path, "reused", load(path), meta)
            path.mkdir(parents=True, exist_ok=True)
            produced = compute(path)
            if not is_distributed_follower():
                write_text_atomic(path / "config.yaml", self.config_yaml)
                self.store.commit(path, [*produced.files, "config.yaml"], {"stage": stage, **produced.meta})
                shutil.rmtree(path / "checkpoints", ignore_errors=True)
            barrier()  # DDP: the other ranks read this artifact next, so only once rank 0 has committed it
            return Outcome(stage, key, path, produced.status, produced.payload, produced.meta)
