"""The report averages only results of identical settings apart from the seed: real ``schedule=baseline`` cells
whose pretrain epochs differ are two rows labelled by the epochs, seeds of one setting one row, a result of the same
settings and seed written twice counts once (with a note), and the sweep summary follows the same rule."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import compose_settings
from omegaconf import OmegaConf

from rethink.pipeline.result import run_cell
from rethink.results import files, report, tables

BASELINE = ("dataset=synthetic", "model=vgg16", "model.width_multiplier=0.125", "trainer=cpu", "schedule=baseline")
RUNS = {"e1s1": (1, 1), "e2s2": (2, 2), "e1s2": (1, 2), "e1s3": (1, 3), "e1s1_again": (1, 1)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each run of :data:`RUNS` (pretrain epochs, seed) in its own folder; ``e1s1_again`` repeats ``e1s1`` later."""
    root = tmp_path_factory.mktemp("settings")
    for name, (epochs, seed) in RUNS.items():
        store = f"paths.artifact_dir={root / 'artifacts'}"
        run_cell(compose_settings(*BASELINE, f"pretrain.epochs={epochs}", f"seed={seed}", store), root / name)
    again = root / "e1s1_again" / "result.json"
    os.utime(again, (time.time() + 60, time.time() + 60))  # certainly the newer of the two
    return root


def _rows(runs: Path, *names: str) -> list[tables.Row]:
    results, problems = files.collect(runs / name for name in names)
    assert not problems
    (table,) = tables.build_tables(results, metric="final")
    return table.rows


def _seeds(row: tables.Row) -> list[int]:
    return sorted(row.cells["unpruned"].values)


def test_settings_are_recorded_without_the_seed(runs: Path) -> None:
    one, two = (files.collect([runs / name])[0][0]["settings"] for name in ("e1s1", "e1s2"))
    assert one == two and one["values"]["pretrain.epochs"] == 1 and "seed" not in one["values"]
    other = files.collect([runs / "e2s2"])[0][0]["settings"]
    assert other["key"] != one["key"] and other["values"]["pretrain.epochs"] == 2


def test_different_pretrain_epochs_are_two_rows_labelled_by_them(runs: Path, tmp_path: Path) -> None:
    rows = _rows(runs, "e1s1", "e2s2")
    assert [(row.model_text, _seeds(row)) for row in rows] == [
        ("vgg16 (pretrain.epochs=1)", [1]),
        ("vgg16 (pretrain.epochs=2)", [2]),
    ]
    results, _ = files.collect([runs / "e1s1", runs / "e2s2"])
    report.write_report(results, [], tmp_path, ["runs"], metric="final")
    with (tmp_path / "cells.csv").open() as f:
        cells = [(line["model"], line["n"]) for line in csv.DictReader(f)]
    assert cells == [("vgg16 (pretrain.epochs=1)", "1"), ("vgg16 (pretrain.epochs=2)", "1")]


def test_seeds_of_identical_settings_are_one_row(runs: Path) -> None:
    (row,) = _rows(runs, "e1s1", "e1s2", "e1s3")
    assert row.model_text == "vgg16" and _seeds(row) == [1, 2, 3]


def test_the_same_settings_and_seed_twice_count_once_the_newest(runs: Path) -> None:
    results, _ = files.collect([runs / "e1s1", runs / "e1s1_again"])
    (table,) = tables.build_tables(results, metric="final")
    (row,) = table.rows
    assert row.cells["unpruned"].sources == {1: str(runs / "e1s1_again" / "result.json")}
    (note,) = [n for n in table.notes if "counts once" in n]
    assert str(runs / "e1s1" / "result.json") in note and "seed 1" in note


def test_the_sweep_summary_follows_the_same_rule(runs: Path, capsys: pytest.CaptureFixture) -> None:
    report.SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(runs)}}}))
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("| synthetic")]
    assert len(lines) == 2, printed
    assert "vgg16 (pretrain.epochs=1)" in lines[0] and "(3)" in lines[0]  # seeds 1 (the newest of two), 2, 3
    assert "vgg16 (pretrain.epochs=2)" in lines[1] and "(1" in lines[1]
    assert "counts once" in printed


# --------------------------------------------------------------------------- schedule variants: rows, not columns


def _fake(schedule: str, seed: int, top1: float, lr: float) -> dict[str, Any]:
    config = {"model": {"name": "resnet56"}, "schedule": {"name": schedule, "lr": lr}}
    return {
        "cell": {"dataset": "cifar10", "model": "resnet56", "pruner": "l1", "schedule": schedule, "seed": seed},
        "accuracy": {"unit": "percent", "top1_final": top1},
        "pruning": {"pruner": "l1", "requested": {"variant": "A"}},
        "stages": [],
        "config": config,
        "_file": f"{schedule}-{lr}-{seed}",
    }


def test_a_schedule_run_with_two_settings_is_two_rows_not_two_columns() -> None:
    results = [_fake("finetune", s, 93.0 + s, 0.001) for s in (1, 2)]
    results += [_fake("scratch_b", s, 92.0 + s, lr) for s in (1, 2) for lr in (0.1, 0.01)]
    (table,) = tables.build_tables(results, metric="final")
    assert table.columns == ["finetune", "scratch_b"]
    got = [(row.model_text, sorted(c for c, cell in row.cells.items() if cell.values)) for row in table.rows]
    assert sorted(got) == [
        ("resnet56", ["finetune"]),
        ("resnet56 (schedule.lr=0.01)", ["scratch_b"]),
        ("resnet56 (schedule.lr=0.1)", ["scratch_b"]),
    ]
    assert all(len(cell.values) == 2 for row in table.rows for cell in row.cells.values() if cell.values)


def test_unpruned_from_baselines_of_different_settings_is_refused_with_a_note() -> None:
    scratch = [_fake("scratch_e", s, 92.0 + s, 0.1) for s in (1, 2)]
    baselines = []
    for epochs in (160, 80):
        for seed in (1, 2):
            r = _fake("baseline", seed, 93.0, 0.1) | {"_file": f"baseline-{epochs}-{seed}"}
            r["cell"] = {**r["cell"], "pruner": "none"}
            r["config"] = {"model": {"name": "resnet56"}, "pretrain": {"epochs": epochs, "lr": 0.1}}
            baselines.append(r)
    l1 = next(t for t in tables.build_tables(scratch + baselines, metric="final") if t.name == "l1")
    (row,) = l1.rows
    assert not row.cells["unpruned"].values
    (note,) = [n for n in l1.notes if "no Unpruned accuracy" in n]
    assert "pretrain.epochs=160" in note and "pretrain.epochs=80" in note and "not averaged" in note
    alone = next(t for t in tables.build_tables(scratch + baselines[:2], metric="final") if t.name == "l1")
    assert alone.rows[0].cells["unpruned"].values == {1: 93.0, 2: 93.0}


def test_scratch_runs_without_a_large_model_join_the_row_of_its_one_pretrain_setting() -> None:
    def with_pretrain(r: dict[str, Any], epochs: int) -> dict[str, Any]:
        return r | {
            "config": r["config"] | {"pretrain": {"epochs": epochs, "lr": 0.1}},
            "_file": f"{r['_file']}-{epochs}",
        }

    finetune = [with_pretrain(_fake("finetune", s, 93.0, 0.001), 160) for s in (1, 2)]
    scratch = [_fake("scratch_e", s, 92.0, 0.1) for s in (1, 2)]
    (table,) = tables.build_tables(finetune + scratch, metric="final")
    (row,) = table.rows
    assert row.model_text == "resnet56" and row.cells["scratch_e"].values == {1: 92.0, 2: 92.0}
    other = [with_pretrain(_fake("finetune", s, 93.0, 0.001), 80) for s in (1, 2)]
    (table,) = tables.build_tables(finetune + other + scratch, metric="final")
    assert sorted(row.model_text for row in table.rows) == [
        "resnet56 (pretrain.epochs=160)",
        "resnet56 (pretrain.epochs=80)",
        "resnet56 (without pretrain)",
    ]
