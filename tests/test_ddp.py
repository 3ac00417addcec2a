"""``trainer=ddp``: whole pruned cells on 2 CPU processes (gloo), compared with single-process runs.

Lightning's launcher re-runs the CLI for rank 1 at the first Lightning run; both ranks then go through the pretrain
fit, the prune stage's run (where the pruning callback decides on rank 0 and broadcasts the decision) and the retrain
fit, and rank 0 alone writes the artifacts and ``result.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, compose_settings

from rethink.arch import ArchSpec, build
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell
from rethink.pruning import PruneContext, create
from rethink.pruning.decision import state_digest
from rethink.pruning.l1 import FilterTargetSettings

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


def _run_ddp(
    run_dir: Path, artifact_dir: Path, cell: tuple[str, ...] = CELL, **env_extra: str
) -> subprocess.CompletedProcess:
    """The CLI with ``trainer=ddp`` on 2 CPU processes; the whole process group is killed on timeout."""
    command = [
        sys.executable, "-m", "rethink.main", *cell,
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}", f"paths.artifact_dir={artifact_dir}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _DDP_ENV}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", **env_extra)
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
    ddp_run = _run_ddp(tmp_path / "ddp_run", tmp_path / "ddp_art", (*CELL, "dataset.batch_size=64"))
    assert ddp_run.returncode == 0, ddp_run.stdout[-4000:]
    assert (tmp_path / "ddp_run" / "train_ddp_process_1.log").is_file()  # rank 1 really ran, in the same run dir
    assert [p.parent.name for p in tmp_path.rglob("result.json")] == ["ddp_run"]  # rank 0 wrote the one result
    assert ddp_run.stdout.count("test top-1 accuracy") == 1  # rank 1 prints no report
    assert "sync_dist" not in ddp_run.stdout  # no advice to reduce values torchmetrics reduced over the processes
    ddp = json.loads((tmp_path / "ddp_run" / "result.json").read_text())
    assert ddp["config"]["trainer"]["strategy"] == "ddp" and ddp["config"]["trainer"]["devices"] == 2
    assert [(s["stage"], s["status"]) for s in ddp["stages"]] == [
        ("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")
    ]  # fmt: skip

    # decided on rank 0, broadcast: both ranks installed exactly the pruned weights rank 0 stored
    prune_dir = Path(_stage(ddp, "prune")["path"])
    keep = json.loads((prune_dir / "keep.json").read_text())
    digests = _stage(ddp, "prune")["installed_sha256_per_rank"]
    stored = torch.load(prune_dir / "weights.pt", map_location="cpu", weights_only=True)
    assert len(digests) == 2 and set(digests) == {state_digest(stored)}
    assert json.loads((prune_dir / "manifest.json").read_text())["installed_sha256_per_rank"] == digests

    # one process pruning the DDP-trained weights takes exactly the same decision
    pretrain_dir = Path(_stage(ddp, "pretrain")["path"])
    large_spec = ArchSpec.from_json((pretrain_dir / "spec.json").read_text())
    target = ArchSpec.from_json((prune_dir / "spec.json").read_text())
    model = build(large_spec)
    model.load_state_dict(torch.load(pretrain_dir / "weights.pt", map_location="cpu", weights_only=True))
    pruner = create(FilterTargetSettings(variant="B"), "resnet56")
    assert pruner.decide(PruneContext(model, large_spec, "resnet56", ddp["cell"]["seed"], target)).keep == keep

    # a single-process run of the same cell: same pruned spec (its own trained weights pick its own filters)
    single = run_cell(
        compose_settings(*CELL, "dataset.batch_size=64", "trainer=cpu", f"paths.artifact_dir={tmp_path / 'art'}"),
        tmp_path / "one",
    )
    assert single["pruning"]["widths"]["after"] == ddp["pruning"]["widths"]["after"]
    assert single["pruning"]["widths"]["before"] == ddp["pruning"]["widths"]["before"]
    assert (single["params"], single["flops"]) == (ddp["params"], ddp["flops"])
    # dataset.batch_size (64) is the global batch: each of the 2 ranks draws 32, and every trained stage takes the
    # optimizer steps of the single-process run (256 images / 64 = 4 per epoch; a full batch per rank would take 2)
    assert ddp["batch"] == {"global": 64, "world_size": 2, "per_rank": 32}
    assert single["batch"] == {"global": 64, "world_size": 1, "per_rank": 64}
    for stage in ("pretrain", "retrain"):
        assert _stage(ddp, stage)["optimizer_steps"] == _stage(single, stage)["optimizer_steps"] == 4
    assert {s["device"] for s in ddp["stages"]} == {"cpu x2"} and {s["device"] for s in single["stages"]} == {"cpu"}
    single_prune = Path(_stage(single, "prune")["path"])
    assert (single_prune / "spec.json").read_text() == (prune_dir / "spec.json").read_text()
    single_keep = json.loads((single_prune / "keep.json").read_text())
    assert {n: len(i) for n, i in single_keep.items()} == {n: len(i) for n, i in keep.items()}
    assert (tmp_path / "one" / "spec.json").read_text() == (tmp_path / "ddp_run" / "spec.json").read_text()


def test_ddp_data_driven_pruner_decides_once_on_rank_0_from_calibration_data(tmp_path: Path) -> None:
    """A pruner from the user's own package (tests/toy_plugins.py, named by ``_target_`` in a config option on the
    search path) that reads calibration batches: one decision, on rank 0; both ranks end with its spec and weights."""
    options = tmp_path / "conf" / "pruner"
    options.mkdir(parents=True)
    (options / "activation.yaml").write_text(
        "_target_: toy_plugins.ActivationPruner\nname: activation\nkeep_fraction: 0.5\n"
    )
    decisions = tmp_path / "decisions"
    decisions.mkdir()
    cell = (
        *CELL[:3], "pruner=activation", "schedule=finetune", "pretrain.epochs=1", "calibration.batches=2",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
    )  # fmt: skip
    run = _run_ddp(
        tmp_path / "run", tmp_path / "art", cell, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]),
        TOY_DECISIONS_DIR=str(decisions),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    assert [p.name.split("-")[0] for p in decisions.iterdir()] == ["rank0"]  # decided once, on rank 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [(s["stage"], s["status"]) for s in result["stages"]] == [
        ("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")
    ]  # fmt: skip
    prune_dir = Path(_stage(result, "prune")["path"])
    assert json.loads((prune_dir / "decision.json").read_text()) == {"calibration_batches": 2, "calibration_images": 64}
    stored = torch.load(prune_dir / "weights.pt", map_location="cpu", weights_only=True)
    assert _stage(result, "prune")["installed_sha256_per_rank"] == [state_digest(stored)] * 2
    assert (tmp_path / "run" / "spec.json").read_text() == (prune_dir / "spec.json").read_text()


def test_ddp_thinet_gives_every_rank_the_same_pruned_model(tmp_path: Path) -> None:
    cell = (*CELL[:3], "pruner=thinet", "pruner.variant=B", "pruner.samples=400", "calibration.batches=2",
            "schedule=finetune", "pretrain.epochs=1")  # fmt: skip
    run = _run_ddp(tmp_path / "run", tmp_path / "art", cell)
    assert run.returncode == 0, run.stdout[-4000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    prune_dir = Path(_stage(result, "prune")["path"])
    stored = torch.load(prune_dir / "weights.pt", map_location="cpu", weights_only=True)
    assert _stage(result, "prune")["installed_sha256_per_rank"] == [state_digest(stored)] * 2
    notes = json.loads((prune_dir / "decision.json").read_text())
    assert notes["calibration_batches"] == 2 and set(notes["layers"]) == set(
        json.loads((prune_dir / "keep.json").read_text())
    )


def test_a_global_batch_the_processes_do_not_divide_is_refused_before_training() -> None:
    settings = compose_settings(*CELL, "trainer=ddp", "trainer.devices=2", "dataset.batch_size=63")
    with pytest.raises(UserError, match=r"dataset.batch_size=63 is the global batch.*2 DDP processes.*not a multiple"):
        build_plan(settings)
    build_plan(compose_settings(*CELL, "trainer=ddp", "trainer.devices=2", "dataset.batch_size=64"))
    build_plan(compose_settings(*CELL, "trainer=ddp", "trainer.devices=auto", "dataset.batch_size=63"))  # decided later
