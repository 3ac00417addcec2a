"""Compute cost: every stage record of result.json carries the wall time and device of its computation (kept when the
stage is reused), and the report's cost tables count each artifact once."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import compose_settings
from test_pipeline import CELL as PIPELINE_CELL

from rethink.pipeline.result import run_cell
from rethink.results import costs, report, tables

CELL = (*PIPELINE_CELL, "schedule=finetune")


def test_stage_records_carry_compute_time_and_device_also_when_reused(tmp_path: Path) -> None:
    settings = compose_settings(*CELL, f"paths.artifact_dir={tmp_path / 'artifacts'}")
    first = run_cell(settings, tmp_path / "a")
    assert [s["status"] for s in first["stages"]] == ["computed"] * 3
    for record in first["stages"]:
        assert isinstance(record["compute_s"], float) and record["compute_s"] > 0, record
        assert record["compute_s"] == round(record["compute_s"], 2)
        assert record["device"] == "cpu"
    assert json.loads((tmp_path / "a" / "result.json").read_text())["stages"] == first["stages"]
    again = run_cell(settings, tmp_path / "b")
    assert [s["status"] for s in again["stages"]] == ["reused"] * 3
    cost = [(s["stage"], s["compute_s"], s["device"]) for s in again["stages"]]
    assert cost == [(s["stage"], s["compute_s"], s["device"]) for s in first["stages"]]


# ------------------------------------------------------------------------------------------- the report's costs


def record(stage: str, key: str | None, seconds: float | None = None, device: str = "cpu") -> dict[str, Any]:
    out: dict[str, Any] = {"stage": stage, "key": key, "path": "/x", "status": "computed"}
    return out | ({"compute_s": seconds, "device": device} if seconds is not None else {})


def fake(schedule: str, variant: str, stages: list[dict[str, Any]], seed: int = 1) -> dict[str, Any]:
    achieved = {"channels_pruned_fraction": 0.5, "params_pruned_fraction": 0.25, "flops_pruned_fraction": 0.125}
    return {
        "cell": {"dataset": "cifar10", "model": "resnet56", "pruner": "l1", "schedule": schedule, "seed": seed},
        "accuracy": {"unit": "percent", "top1_final": 93.0, "top1_best": 93.1},
        "pruning": {"pruner": "l1", "requested": {"variant": variant}, "achieved": achieved},
        "stages": stages,
        "config": {"model": {"name": "resnet56"}, "schedule": {"name": schedule}},
        "_file": f"{schedule}{variant}{seed}",
    }


PRETRAIN = record("pretrain", "p1", 3600.0)  # one hour, shared by the fine-tuned, lottery and variant B cells
SHARED = [
    fake("finetune", "A", [PRETRAIN, record("prune", "qa", 36.0), record("retrain", "fa", 1800.0)]),
    fake(
        "lottery", "A", [{**PRETRAIN, "status": "reused"}, record("prune", "qa", 36.0), record("retrain", "la", 900.0)]
    ),
    fake("scratch_b", "A", [record("prune", None), record("retrain", "ba", 3600.0, "cuda: NVIDIA H200 x2")]),
    fake("finetune", "B", [PRETRAIN, record("prune", "qb", 72.0), record("retrain", "fb", 1800.0)]),
]


def test_shared_artifacts_count_once_and_columns_sum() -> None:
    (cost,) = costs.cost_tables(tables.build_tables(SHARED))
    assert cost.columns == ["unpruned", "pruned", "finetune", "scratch_b", "lottery"]
    row_a, row_b = cost.spent
    assert row_a["unpruned"].hours == {"CPU": 1.0} and row_a["unpruned"].artifacts == 1
    assert row_a["pruned"].hours == {"CPU": 0.01} and row_a["finetune"].hours == {"CPU": 0.5}
    assert row_a["lottery"].hours == {"CPU": 0.25} and row_a["scratch_b"].hours == {"GPU": 2.0}  # 2 processes
    assert "unpruned" not in row_b and row_b["pruned"].hours == {"CPU": 0.02}  # the pretrain counted in row A
    assert cost.total("finetune").hours == {"CPU": 1.0}
    assert cost.total().hours == pytest.approx({"CPU": 1.0 + 0.01 + 0.5 + 0.25 + 0.02 + 0.5, "GPU": 2.0})
    assert cost.total().artifacts == 7 and cost.total().unknown == 0


def test_cost_tables_in_the_report_with_requested_achieved_and_unknown(tmp_path: Path) -> None:
    old = fake("scratch_e", "A", [record("prune", None), record("retrain", "ea")])  # a record from before costs
    root = tmp_path / "runs"
    for i, result in enumerate([*SHARED, old]):
        (root / str(i)).mkdir(parents=True)
        (root / str(i) / "result.json").write_text(json.dumps(result))
    assert report.main([str(root), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Compute cost") :]
    assert "counted once in the whole report" in section and costs.UNKNOWN in section
    assert "Total: 2.28 CPU-h + 2 GPU-h + ? over 8 artifact(s), 1 of unknown cost." in section
    header = "| dataset | model | pruned | requested | achieved: pruned % | Unpruned | Pruned (before retraining) |"
    assert header + " Fine-tuned | Scratch-E | Scratch-B | Lottery | total |" in section
    row = "| cifar10 | resnet56 | A | variant=A | channels 50.0, params 25.0, FLOPs 12.5 | 1 CPU-h | 0.01 CPU-h |"
    assert row + " 0.5 CPU-h | ? | 2 GPU-h | 0.25 CPU-h | 1.76 CPU-h + 2 GPU-h + ? |" in section
    with open(tmp_path / "out" / "costs.csv", newline="") as handle:
        lines = {(r["pruned"], r["column"]): r for r in csv.DictReader(handle)}
    scratch_b = lines[("A", "Scratch-B")]
    assert (scratch_b["requested"], scratch_b["channels_pruned_pct"], scratch_b["params_pruned_pct"]) == (
        "variant=A",
        "50.0",
        "25.0",
    )
    assert (float(scratch_b["gpu_hours"]), float(scratch_b["cpu_hours"]), scratch_b["artifacts"]) == (2.0, 0.0, "1")
    assert lines[("A", "Scratch-E")]["unknown_cost"] == "1" and lines[("B", "Unpruned")]["artifacts"] == "0"


def test_device_kind() -> None:
    assert costs.device_kind("cpu") == ("CPU", 1)
    assert costs.device_kind("cuda: NVIDIA H200 x2") == ("GPU", 2)
    assert costs.device_kind("cpu x4") == ("CPU", 4)
