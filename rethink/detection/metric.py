"""Detection accuracy: COCO mAP and PASCAL VOC AP50, all read from one COCO evaluation (pycocotools, through
torchmetrics' ``MeanAveragePrecision``); no hand-written matching."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.detection import MeanAveragePrecision

# pycocotools' own thresholds (float64); torchmetrics' defaults are float32 values, e.g. a recall threshold of
# 0.5400000214 where COCO has 0.54, which would move an AP whose recall lands exactly on one.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()
VOC07_POINTS = slice(0, 101, 10)  # recall 0, 0.1, ..., 1.0 among the 101 thresholds


class DetectionMetric(nn.Module):
    """mAP of detections against ground truth, accumulated over :meth:`update` calls (and DDP processes).

    Ground-truth objects marked ``difficult`` are given to COCO as crowd regions (``iscrowd=1``): a detection
    matched to one is neither a true nor a false positive, and they do not count as objects to find, as in VOC.
    (COCO matches a detection to an unmatched real object before a crowd region and measures crowd overlap as
    intersection over the detection's area; VOC takes the object of largest IoU. Boxes are used as given: VOC's
    devkit adds one pixel to widths and heights.)

    :meth:`compute` returns, in percent:

    - ``map``: COCO mAP, AP averaged over IoU 0.5, 0.55, ..., 0.95 and the classes;
    - ``map_50``: COCO AP at IoU 0.5 (101-point), averaged over the classes;
    - ``voc07_map_50``: VOC2007's 11-point AP at IoU 0.5, averaged over the classes. COCO's precision array holds,
      per class, at each recall threshold r of 0, 0.01, ..., 1, the interpolated precision max{p(r') : r' >= r}
      (0 where the recall never reaches r); VOC2007's AP is the mean of exactly that at r = 0, 0.1, ..., 1, the
      entries 0, 10, ..., 100;
    - ``voc_area_map_50``: the area under the interpolated precision-recall curve at IoU 0.5 (VOC2010+'s AP),
      approximated by the mean over the 101 recall thresholds; equal to ``map_50`` by construction;
    - ``ap50/<label>``: each class's 101-point AP at IoU 0.5.

    Classes are those with ground truth (a difficult-only class has none); ``nan`` where no class has any.
    """

    def __init__(self) -> None:
        super().__init__()
        self.coco = MeanAveragePrecision(
            iou_type="bbox",
            backend="pycocotools",
            iou_thresholds=IOU_THRESHOLDS,
            rec_thresholds=RECALL_THRESHOLDS,
            extended_summary=True,
            class_metrics=False,  # per-class APs are read from the precision array
        )

    def update(self, predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> None:
        """Add a batch: ``predictions`` as torchvision's detectors give them (``boxes`` xyxy, ``scores``,
        ``labels``), ``targets`` with ``boxes``, ``labels`` and ``difficult`` (bool, optional: all False)."""
        truth = []
        for target in targets:
            difficult = target.get("difficult", torch.zeros_like(target["labels"], dtype=torch.bool))
            truth.append({"boxes": target["boxes"], "labels": target["labels"], "iscrowd": difficult.long()})
        preds = [{key: p[key] for key in ("boxes", "scores", "labels")} for p in predictions]
        self.coco.update(preds, truth)

    def compute(self) -> dict[str, float]:
        """The metrics described in the class docstring."""
        result = self.coco.compute()
        if "precision" not in result:  # nothing to evaluate
            return {name: math.nan for name in ("map", "map_50", "voc07_map_50", "voc_area_map_50")}
        # precision: (IoU thresholds, recall thresholds, classes, area ranges, max detections); -1 = class without
        # ground truth. IoU 0.5, every area, the most detections (100 per image).
        at_50 = result["precision"][0, :, :, 0, -1].double()
        present = at_50[0] > -1
        labels = result["classes"].reshape(-1).tolist()
        ap50 = at_50.mean(dim=0)
        metrics = {
            "map": _percent(result["map"]),
            "map_50": _percent(result["map_50"]),
            "voc07_map_50": _percent(at_50[VOC07_POINTS][:, present].mean(dim=0).mean()),
            "voc_area_map_50": _percent(ap50[present].mean()),
        }
        metrics.update({f"ap50/{label}": 100 * ap50[k].item() for k, label in enumerate(labels) if present[k]})
        return metrics

    def reset(self) -> None:
        self.coco.reset()


def _percent(value: Tensor) -> float:
    """A COCO statistic in percent (nan for COCO's -1, undefined, or an empty mean)."""
    number = float(value)
    return math.nan if number < 0 or math.isnan(number) else 100 * number
