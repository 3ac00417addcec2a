"""``trainer=ddp``: a whole pruned cell on 2 CPU processes (gloo), compared with a single-process run of the same cell.

Lightning's launcher re-runs the CLI for rank 1 at the first ``Trainer.fit``; both ranks then go through the pretrain
fit, the prune and the retrain fit, and rank 0 alone writes the artifacts and ``result.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from conftest import REPO, compose_config

from rethink.arch import ArchSpec, build
from rethink.pruning.decide import decision_digest
from rethink.pruning.prune import prune
from rethink.run import run_cell

CELL = (
    "dataset=synthetic",
    "model=resnet56",
    "model.width_multiplier=0.25",
    "pruner=l1",
    "pruner.variant=B",
    "schedule=finetune",
    "pretrain.epochs=1",
)
DDP_TIMEOUT_S = 240  # a hang (e.g. a rank waiting on a collective the other never reaches) fails instead of blocking
_DDP_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def _run_ddp(run_dir: Path, artifact_dir: Path) -> subprocess.CompletedProcess:
    """The CLI with ``trainer=ddp`` on 2 CPU processes; the whole process group is killed on timeout."""
    command = [
        sys.executable, "-m", "rethink.main", *CELL,
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}", f"paths.artifact_dir={artifact_dir}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _DDP_ENV}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline")
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=DDP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and the rank 1 it launched
        out, _ = proc.communicate()
        raise AssertionError(f"DDP run did not finish in {DDP_TIMEOUT_S} s:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(command, proc.returncode, out)


def _stage(result: dict, name: str) -> dict:
    return next(s for s in result["stages"] if s["stage"] == name)


def test_ddp_cell_prunes_identically_on_every_rank_and_like_one_process(tmp_path: Path) -> None:
    ddp_run = _run_ddp(tmp_path / "ddp_run", tmp_path / "ddp_art")
    assert ddp_run.returncode == 0, ddp_run.stdout[-4000:]
    assert (tmp_path / "ddp_run" / "train_ddp_process_1.log").is_file()  # rank 1 really ran, in the same run dir
    assert [p.parent.name for p in tmp_path.rglob("result.json")] == ["ddp_run"]  # rank 0 wrote the one result
    assert ddp_run.stdout.count("test top-1 accuracy") == 1  # rank 1 prints no report
    ddp = json.loads((tmp_path / "ddp_run" / "result.json").read_text())
    assert ddp["config"]["trainer"]["strategy"] == "ddp" and ddp["config"]["trainer"]["devices"] == 2
    assert [(s["stage"], s["status"]) for s in ddp["stages"]] == [
        ("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")
    ]  # fmt: skip

    # the cross-rank check: both ranks computed the same keep indices, and that is what rank 0 stored
    prune_dir = Path(_stage(ddp, "prune")["path"])
    keep = json.loads((prune_dir / "keep.json").read_text())
    digests = _stage(ddp, "prune")["keep_sha256_per_rank"]
    assert len(digests) == 2 and set(digests) == {decision_digest(keep)}
    assert json.loads((prune_dir / "manifest.json").read_text())["keep_sha256_per_rank"] == digests

    # one process pruning the DDP-trained weights takes exactly the same decision
    pretrain_dir = Path(_stage(ddp, "pretrain")["path"])
    large_spec = ArchSpec.from_json((pretrain_dir / "spec.json").read_text())
    target = ArchSpec.from_json((prune_dir / "spec.json").read_text())
    model = build(large_spec)
    model.load_state_dict(torch.load(pretrain_dir / "weights.pt", map_location="cpu", weights_only=True))
    assert decision_digest(prune(model, large_spec, target, "l1", ddp["cell"]["seed"])[0]) == decision_digest(keep)

    # a single-process run of the same cell: same pruned spec (its own trained weights pick its own filters)
    single = run_cell(compose_config(*CELL, "trainer=cpu", f"paths.artifact_dir={tmp_path / 'art'}"), tmp_path / "one")
    assert single["pruning"]["widths"]["after"] == ddp["pruning"]["widths"]["after"]
    assert single["pruning"]["widths"]["before"] == ddp["pruning"]["widths"]["before"]
    assert (single["params"], single["flops"]) == (ddp["params"], ddp["flops"])
    single_prune = Path(_stage(single, "prune")["path"])
    assert (single_prune / "spec.json").read_text() == (prune_dir / "spec.json").read_text()
    single_keep = json.loads((single_prune / "keep.json").read_text())
    assert {n: len(i) for n, i in single_keep.items()} == {n: len(i) for n, i in keep.items()}
    assert (tmp_path / "one" / "spec.json").read_text() == (tmp_path / "ddp_run" / "spec.json").read_text()
