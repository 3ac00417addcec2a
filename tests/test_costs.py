"""Compute cost: every stage record of result.json carries the wall time and device of its computation (kept when the
stage is reused), and the report's cost tables count each artifact once."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import compose_settings

from rethink.pipeline.result import run_cell

CELL = (
    "dataset=synthetic",
    "model=vgg16",
    "model.width_multiplier=0.125",
    "trainer=cpu",
    "pruner=l1",
    "pruner.variant=A",
    "schedule=finetune",
)


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
