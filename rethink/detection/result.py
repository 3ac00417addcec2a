"""A detection cell's ``result.json``: the cell, the detector's mAP (final and best epoch of its last stage), the
backbone's params and FLOPs at the detection input size beside the classification model it came from, the transfer
setting, and every stage record (the classification cell's and the detection stages)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rethink.detection.runner import DetectionRunner
from rethink.distributed import is_distributed_follower
from rethink.io import copy_file_atomic, write_json_atomic, write_text_atomic
from rethink.pipeline.runner import CellRunner
from rethink.provenance import git_sha, versions


def run_detection_cell(classification: CellRunner, run_dir: Path) -> dict[str, Any]:
    """Run the detection cell whose classification stages ``classification`` runs; write its result."""
    start = time.perf_counter()
    runner = DetectionRunner(classification)
    outcome = runner.run()
    plan, part = runner.plan, runner.part
    assert runner.backbone is not None
    settings = part.settings
    classification_model = plan.cost(plan.retrain.model)
    result = {
        "cell": plan.cell,
        "task": "detection",
        "detection": {
            "transfer": settings.transfer,
            "head": settings.head,
            "data": settings.data.source,
            **outcome.payload["detection"],
        },
        "backbone": {**part.backbone_cost(runner.backbone), "classification_params": classification_model["params"]},
        "classification": {"accuracy": _classification_accuracy(runner.records)},
        "pruning": plan.pruning_summary(),
        "stages": runner.records,
        "wall_time_s": round(time.perf_counter() - start, 3),
        "git_sha": git_sha(),
        "versions": versions(),
        "config": part.cell_settings.config(),
    }
    if not is_distributed_follower():
        write_text_atomic(run_dir / "spec.json", runner.backbone.to_json() + "\n")
        copy_file_atomic(outcome.path / "weights.pt", run_dir / "weights.pt")
        write_json_atomic(run_dir / "result.json", result)
    return result


def _classification_accuracy(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The test accuracy of the classification model the backbone came from (its last classification stage)."""
    found = [r for r in records if r.get("stage") in ("pretrain", "retrain") and "accuracy" in r]
    return found[-1]["accuracy"] if found else None
