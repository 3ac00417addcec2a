"""Reading result files: :func:`collect` finds every ``result.json`` under the given paths and :func:`check` says why
one cannot be reported (unreadable, partial — required keys missing —, failed or foreign: not a rethink result); the
accuracies a result holds (:func:`top1`, :func:`stage_accuracy`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from rethink.results.detection import check_detection, is_detection

REQUIRED = (
    ("cell", "dataset"),
    ("cell", "model"),
    ("cell", "pruner"),
    ("cell", "schedule"),
    ("cell", "seed"),
    ("accuracy", "top1_final"),
)


def check(result: Any) -> str | None:
    """Why ``result`` cannot be reported (foreign / partial / failed), or None when it can."""
    if not isinstance(result, dict):
        return f"foreign: a JSON {type(result).__name__}, not a result object"
    if not isinstance(result.get("cell"), dict) and not isinstance(result.get("accuracy"), dict):
        return "foreign: not a rethink result.json (no 'cell' or 'accuracy' keys)"
    if is_detection(result):
        return check_detection(result)
    missing = [
        ".".join(path)
        for path in REQUIRED
        if not isinstance(result.get(path[0]), dict) or path[1] not in result[path[0]]
    ]
    if missing:
        return "partial: missing " + ", ".join(missing)
    failed = [
        str(s.get("stage", "?"))
        for s in result.get("stages") or []
        if isinstance(s, dict) and s.get("status") == "failed"
    ]
    if failed or result.get("status") == "failed":
        return "failed: stage " + ", ".join(failed or ["run"]) + " failed"
    top1 = result["accuracy"]["top1_final"]
    if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not math.isfinite(top1):
        return f"failed: accuracy.top1_final is {top1!r}, not a finite number"
    if not isinstance(result["cell"]["seed"], int):
        return f"partial: cell.seed is {result['cell']['seed']!r}, not an integer"
    return None


def collect(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every reportable ``result.json`` under ``paths`` (a file given directly may have any name), and a note for
    each one that is unreadable, partial, failed or foreign. Each result gets its file under the key ``_file``."""
    results, problems = [], []
    for root in map(Path, paths):
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        files = [root] if root.is_file() else sorted(root.rglob("result.json"))
        if not files:
            problems.append(f"{root}: no result.json found")
        for file in files:
            try:
                result = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                problems.append(f"{file}: unreadable ({type(exc).__name__}: {exc})")
                continue
            reason = check(result)
            if reason:
                problems.append(f"{file}: {reason}")
                continue
            result["_file"] = str(file)
            results.append(result)
    return results, problems


# ------------------------------------------------------------------------------------------- values of a result


def stage_record(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The run's (last) own record of stage ``name`` (not a guided pruner's source cell's), or {}."""
    found = [
        s for s in result.get("stages") or [] if isinstance(s, dict) and s.get("stage") == name and "source" not in s
    ]
    return found[-1] if found else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def top1(accuracy: dict[str, Any] | None, metric: str) -> tuple[float | None, bool]:
    """The top-1 of ``accuracy`` at ``metric``, and whether it fell back to the final epoch (no best recorded)."""
    accuracy = accuracy or {}
    value = _number(accuracy.get(f"top1_{metric}"))
    if value is None and metric != "final":
        return _number(accuracy.get("top1_final")), True
    return value, False


def stage_accuracy(result: dict[str, Any], name: str, metric: str = "final") -> tuple[float | None, bool]:
    """The top-1 of the run's stage ``name`` at ``metric`` (prune: the pruned model, evaluated once), or None."""
    return top1(stage_record(result, name).get("accuracy"), metric)
