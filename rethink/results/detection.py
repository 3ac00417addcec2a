"""The detection table of a report (``task=detection`` results): per (detection data, backbone model, pruned
variant) a row, per transfer setting a column — Unpruned, Prune-C, Prune-D, Scratch-E, Scratch-B as the paper names
them — holding the VOC07 11-point mAP@0.5 of the final detector, mean ± std (n seeds), with the paper's number
beside it where the row is the paper's (VOC 2007, ResNet-34; ``detection`` in published.json). The backbone's params
at the detection input size come with each row."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from rethink.results import published

TRANSFERS = ("unpruned", "prune_c", "prune_d", "scratch_e", "scratch_b")
TITLES = {"unpruned": "Unpruned", "prune_c": "Prune-C", "prune_d": "Prune-D", "scratch_e": "Scratch-E"}
TITLES["scratch_b"] = "Scratch-B"
METRIC = "voc07_map_50"


def is_detection(result: dict[str, Any]) -> bool:
    return result.get("task") == "detection"


def check_detection(result: dict[str, Any]) -> str | None:
    """Why a detection ``result.json`` cannot be reported, or None."""
    detection = result.get("detection")
    if not isinstance(detection, dict) or not isinstance(detection.get("final"), dict):
        return "partial: missing detection.final"
    value = detection["final"].get(METRIC)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"failed: detection.final.{METRIC} is {value!r}, not a finite number"
    if detection.get("transfer") not in TRANSFERS:
        return f"partial: detection.transfer is {detection.get('transfer')!r}"
    return None


def _variant(result: dict[str, Any]) -> str:
    pruner = (result.get("config") or {}).get("pruner") or {}
    return str(pruner.get("variant") or pruner.get("ratio") or "-")


def _cell(values: list[float], paper: float | None) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    text = f"{mean:.2f} ± {statistics.stdev(values):.2f} ({len(values)})" if len(values) > 1 else f"{mean:.2f} (1)"
    return text + ("" if paper is None else f" (paper {paper:.2f})")


def _paper(data: str, model: str, variant: str, transfer: str) -> float | None:
    table = published.load().get("detection") or {}
    if (table.get("data"), table.get("model")) != (data, model):
        return None
    if transfer == "unpruned":
        return table.get("unpruned")
    return (table.get("variants") or {}).get(variant, {}).get(transfer)


def detection_table(results: list[dict[str, Any]]) -> str:
    """The Markdown detection table of the ``task=detection`` results (empty string: none)."""
    rows: dict[tuple[str, str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    params: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for result in filter(is_detection, results):
        detection, cell = result["detection"], result["cell"]
        key = (str(detection.get("data")), cell["model"], _variant(result))
        rows[key][detection["transfer"]][cell["seed"]] = float(detection["final"][METRIC])
        params[key][detection["transfer"]] = int((result.get("backbone") or {}).get("params", 0))
    if not rows:
        return ""
    header = ["data", "backbone", "pruned", "backbone params", *(TITLES[t] for t in TRANSFERS)]
    lines = [
        "### Transfer to object detection (Faster R-CNN) — VOC07 mAP@0.5 (%), final detector",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for (data, model, variant), cells in sorted(rows.items()):
        pruned = params[(data, model, variant)].get("prune_c") or params[(data, model, variant)].get("scratch_e")
        row = [data, model, variant, f"{pruned:,}" if pruned else "-"]
        row += [_cell(list(cells[t].values()), _paper(data, model, variant, t)) for t in TRANSFERS]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "mAP: VOC2007 11-point AP at IoU 0.5 (difficult objects ignored), from pycocotools' matching through "
        "torchmetrics. The paper's numbers (its Sec. 4) come from a detector whose implementation, VOC split and "
        "image scale are not published: compare the ordering of the settings, not the values.",
    ]
    return "\n".join(lines) + "\n"
