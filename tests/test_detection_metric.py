"""DetectionMetric on hand-checked cases: perfect detections, a ranked list with known 11- and 101-point APs, and
difficult objects that count neither way."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from rethink.detection.metric import DetectionMetric

SUMMARY = ("map", "map_50", "voc07_map_50", "voc_area_map_50")


def _box(x: float, y: float, size: float = 10.0) -> list[float]:
    return [x, y, x + size, y + size]


def _truth(boxes: list[list[float]], labels: list[int], difficult: list[bool] | None = None) -> dict[str, Tensor]:
    target = {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if difficult is not None:
        target["difficult"] = torch.tensor(difficult)
    return target


def _pred(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, Tensor]:
    return {
        "boxes": torch.tensor(boxes).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def test_perfect_detections_score_100_everywhere() -> None:
    metric = DetectionMetric()
    boxes = [_box(0, 0), _box(30, 30, 20), _box(60, 5, 15)]
    metric.update([_pred(boxes, [0.9, 0.8, 0.7], [1, 2, 1])], [_truth(boxes, [1, 2, 1])])
    metric.update([_pred([_box(5, 5, 40)], [0.6], [3])], [_truth([_box(5, 5, 40)], [3])])
    result = metric.compute()
    assert {name: result[name] for name in SUMMARY} == pytest.approx(dict.fromkeys(SUMMARY, 100.0))
    assert {k: v for k, v in result.items() if k.startswith("ap50/")} == pytest.approx(
        {"ap50/1": 100.0, "ap50/2": 100.0, "ap50/3": 100.0}
    )


def test_ranked_detections_give_the_hand_computed_11_and_101_point_aps() -> None:
    """3 objects; detections by score: FP, TP, TP, FP, TP. Precision/recall after each: 0/0, 1/2 at 1/3, 2/3 at 2/3,
    2/4 at 2/3, 3/5 at 1. Interpolated precision: 2/3 up to recall 2/3, 3/5 above."""
    metric = DetectionMetric()
    objects = [_box(0, 0), _box(20, 20), _box(40, 40)]
    detections = [_box(60, 60), objects[0], objects[1], _box(80, 80), objects[2]]
    metric.update([_pred(detections, [0.9, 0.8, 0.7, 0.6, 0.5], [1] * 5)], [_truth(objects, [1, 1, 1])])
    result = metric.compute()
    voc07 = (7 * 2 / 3 + 4 * 3 / 5) / 11  # recall 0, 0.1, ..., 0.6 | 0.7, ..., 1.0
    area = (67 * 2 / 3 + 34 * 3 / 5) / 101  # recall 0, 0.01, ..., 0.66 | 0.67, ..., 1.0
    assert result["voc07_map_50"] == pytest.approx(100 * voc07, rel=1e-12)
    assert result["voc_area_map_50"] == pytest.approx(100 * area, rel=1e-12)
    assert result["ap50/1"] == pytest.approx(100 * area, rel=1e-12)
    assert result["map_50"] == pytest.approx(100 * area, rel=1e-6)  # COCO's own statistic (float32)
    assert result["map"] == pytest.approx(100 * area, rel=1e-6)  # exact boxes: the same at every IoU


def test_difficult_objects_are_neither_found_nor_missed() -> None:
    """A detection of a difficult object, ranked first, is no false positive, and an undetected difficult object is
    no miss; a class with difficult objects only is left out of the class mean."""
    metric = DetectionMetric()
    metric.update([_pred([_box(0, 0)], [0.8], [1])], [_truth([_box(0, 0)], [1], [False])])
    metric.update(
        [_pred([_box(20, 20), _box(50, 50)], [0.9, 0.7], [1, 2])],
        [_truth([_box(20, 20), _box(60, 0), _box(50, 50)], [1, 1, 2], [True, True, True])],
    )
    result = metric.compute()
    assert {name: result[name] for name in SUMMARY} == pytest.approx(dict.fromkeys(SUMMARY, 100.0))
    assert "ap50/2" not in result


def test_without_difficult_flags_the_same_objects_count() -> None:
    metric = DetectionMetric()
    metric.update(
        [_pred([_box(20, 20), _box(0, 0)], [0.9, 0.8], [1, 1])],
        [_truth([_box(20, 20), _box(0, 0), _box(60, 0)], [1, 1, 1])],
    )
    result = metric.compute()
    assert result["voc07_map_50"] == pytest.approx(100 * 7 / 11, rel=1e-12)  # recall reaches 2/3 at precision 1


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_nothing_to_evaluate_is_nan() -> None:
    assert all(math.isnan(v) for v in DetectionMetric().compute().values())
