"""A cell whose stages come from the artifact store trains nothing; with ``logger=wandb`` each reused stage is still
an (offline) W&B run, named and grouped as its trained run, tagged ``reused`` and carrying the stored results, and
one console line per stage says so. W&B 0.31 keeps an offline run's record (name, group, tags, summary) only in the
binary ``run-<id>.wandb`` protobuf log; its strings are searched in the bytes, as in tests/test_sweeps.py. A protobuf
string is length-prefixed: ``\x06reused`` is the tag (or summary key) ``reused``, not ``reused`` inside a longer string
such as this test's directory name."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.pipeline.result import run_cell

CELL = (
    "dataset=synthetic",
    "model.width_multiplier=0.125",
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.limit_train_batches=2",
    "pretrain.epochs=1",
    "+experiment/paper/row=vgg16_a",  # VGG-16, L1-norm variant A: pretrain, prune, retrain
    "schedule=finetune",
)
GROUP = "synthetic/vgg16/l1 A/finetune"
REUSED = b"\x06reused"  # the tag and the summary key, each a length-prefixed protobuf string


def _records(run_dir: Path) -> list[bytes]:
    """The binary run record of every offline W&B run of a cell's run directory."""
    return [next(run.glob("run-*.wandb")).read_bytes() for run in sorted((run_dir / "wandb").glob("offline-run-*"))]


def test_reused_stages_are_wandb_runs_marked_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    overrides = (*CELL, "logger=wandb", f"paths.artifact_dir={tmp_path / 'store'}")
    first = run_cell(compose_settings(*overrides), tmp_path / "first")
    assert [s["status"] for s in first["stages"]] == ["computed"] * 3
    assert "reused from the store" not in capsys.readouterr().err
    trained = _records(tmp_path / "first")
    assert len(trained) == 3 and not any(REUSED in record or b"reused_from" in record for record in trained)

    second = run_cell(compose_settings(*overrides), tmp_path / "second")
    assert [s["status"] for s in second["stages"]] == ["reused"] * 3
    err = capsys.readouterr().err
    records = _records(tmp_path / "second")
    assert len(records) == 3
    for stage in second["stages"]:
        name, path = stage["stage"], stage["path"]
        line = f"stage {name} reused from the store ({path}): logged to W&B as a run tagged 'reused'"
        assert err.count(line) == 1, err
        (record,) = [r for r in records if f"{GROUP}/seed1/{name}".encode() in r]  # named as its trained run
        assert GROUP.encode() in record and record.count(REUSED) >= 2  # the tag and the summary's reused: true
        assert f'"{path}"'.encode() in record  # the summary's reused_from
        top1 = stage["accuracy"]["top1_final"]  # the stored result, in the summary as the trained run had it
        assert b"final/top1_final" in record and str(top1).encode() in record
        assert (b"final/epochs" in record) == (name != "prune")  # a training stage's epochs; prune trains none
    assert [s["accuracy"] for s in second["stages"]] == [s["accuracy"] for s in first["stages"]]
    assert not list(tmp_path.glob("wandb_dir/**/*.wandb"))  # the runs lie in the cell's run directory


def test_reuse_with_csv_logger_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without W&B the stored metrics.csv is the stage's log: reuse adds nothing and says nothing."""
    overrides = (*CELL, f"paths.artifact_dir={tmp_path / 'store'}")
    run_cell(compose_settings(*overrides), tmp_path / "first")
    second = run_cell(compose_settings(*overrides), tmp_path / "second")
    assert [s["status"] for s in second["stages"]] == ["reused"] * 3
    assert "reused from the store" not in capsys.readouterr().err
    assert not (tmp_path / "second" / "wandb").exists()
