"""The report's detection table: task=detection results grouped by (data, backbone, variant) with one column per
transfer setting, mean ± std over seeds of the final VOC07 mAP, the paper's number beside the paper's rows; the
classification tables and verdicts are unaffected; a result without mAP is listed as a problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rethink.results import report


def detection_result(transfer: str, variant: str, seed: int, map50: float) -> dict:
    return {
        "cell": {"dataset": "imagenet", "model": "resnet34", "pruner": "l1", "schedule": transfer, "seed": seed},
        "task": "detection",
        "detection": {"transfer": transfer, "head": "fpn", "data": "voc2007", "final": {"voc07_map_50": map50}},
        "backbone": {"params": 20_000_000 if transfer == "unpruned" else 19_000_000},
        "stages": [],
        "config": {"pruner": {"name": "l1", "variant": variant}},
    }


def write(folder: Path, results: list[dict]) -> None:
    for number, result in enumerate(results):
        (folder / str(number)).mkdir(parents=True)
        (folder / str(number) / "result.json").write_text(json.dumps(result))


def test_detection_table_beside_the_papers_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [detection_result("unpruned", "A", seed, 70.0 + seed) for seed in (1, 2)]
    results += [detection_result("prune_c", "A", seed, 69.0 + seed) for seed in (1, 2)]
    results += [detection_result("scratch_b", "B", 1, 72.5)]
    broken = detection_result("prune_d", "A", 1, 70.0)
    del broken["detection"]["final"]
    write(tmp_path / "runs", [*results, broken])
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "tables" / "detection.md").read_text()
    row_a = next(line for line in table.splitlines() if line.startswith("| voc2007 | resnet34 | A |"))
    cells = [c.strip() for c in row_a.strip("|").split("|")]
    assert cells[3] == "19,000,000"
    assert cells[4] == "71.50 ± 0.71 (2) (paper 71.69)"  # Unpruned
    assert cells[5] == "70.50 ± 0.71 (2) (paper 71.47)"  # Prune-C
    assert cells[6] == "-"  # Prune-D: its only result has no mAP
    row_b = next(line for line in table.splitlines() if line.startswith("| voc2007 | resnet34 | B |"))
    assert "72.50 (1) (paper 71.26)" in row_b
    assert table in (tmp_path / "report" / "report.md").read_text()
    out, err = capsys.readouterr()
    assert "Transfer to object detection" in out
    assert "partial: missing detection.final" in err
    assert json.loads((tmp_path / "report" / "verdicts.json").read_text())["comparisons"] == []
