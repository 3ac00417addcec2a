"""An embedded detection data set, generated deterministically from a seed: coloured squares, circles and triangles
on textured grey backgrounds, each object's box and class known exactly.

Every image holds 1-4 objects of 1/8 to 7/16 of the image side, drawn in order (later ones on top) in saturated
colours over a low-saturation background of smooth noise and stripes. An object hidden for more than half of its
pixels by later ones is left out (neither drawn nor annotated), so every annotated object is at least half visible.
Boxes are xyxy in pixels, tight around the object's whole drawn mask (``x2``, ``y2`` exclusive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

SHAPE_CLASSES = ("square", "circle", "triangle")  # labels 1..3; 0 is the background
MAX_OBJECTS = 4
MIN_VISIBLE = 0.5  # the least visible fraction of an annotated object's pixels


@dataclass
class ShapeScenes:
    """Generated images (N,3,H,W float in [0,1]) and per image its objects' boxes (K,4 float32 xyxy), labels
    (K int64 in 1..3) and colours (K,3 float32 RGB, exact in the image where the object is visible), in draw order."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    colors: list[torch.Tensor]


def _background(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Grey levels with smooth luminance and colour noise and faint stripes of random angle and period."""
    grey = 0.25 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    coarse = torch.rand(n, 4, 5, 5, generator=g) - 0.5  # one luminance and three colour channels of smooth noise
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    luminance, tint = 0.35 * smooth[:, :1], 0.12 * smooth[:, 1:]
    angle = math.pi * torch.rand(n, 1, 1, generator=g)
    period = 6 + 18 * torch.rand(n, 1, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    amplitude = 0.1 * torch.rand(n, 1, 1, generator=g)
    coords = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    along = x * torch.cos(angle) + y * torch.sin(angle)
    stripes = (amplitude * torch.sin(2 * math.pi * along / period + phase)).unsqueeze(1)
    return (grey + luminance + stripes + tint).clamp_(0, 1)


def _colors(count: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Saturated RGB colours of random hue (HSV with S in [0.75, 1], V in [0.8, 1])."""
    hue = torch.rand(*count, 1, generator=g)
    sat = 0.75 + 0.25 * torch.rand(*count, 1, generator=g)
    val = 0.8 + 0.2 * torch.rand(*count, 1, generator=g)
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * hue) % 6
    return val - val * sat * torch.minimum(k, 4 - k).clamp(0, 1)


def _masks(labels: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean masks (N,K,H,W) of shapes centred at (cx, cy) with bounding side ``side``, tested at pixel centres."""
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    dx = (centres.view(1, 1, 1, -1) - cx[..., None, None]).abs()
    dy = centres.view(1, 1, -1, 1) - cy[..., None, None]
    half = side[..., None, None] / 2
    square = (dx <= half) & (dy.abs() <= half)
    circle = dx**2 + dy**2 <= half**2
    triangle = (dy <= half) & (dx <= (dy + half) / 2)  # apex up, base of width ``side`` at the bottom
    kind = labels[..., None, None]
    return torch.where(kind == 1, square, torch.where(kind == 2, circle, triangle))


def _visible(masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Which objects stay: present ones at least MIN_VISIBLE uncovered by the kept objects drawn after them."""
    kept = present.clone()
    cover = torch.zeros_like(masks[:, 0])
    for k in reversed(range(masks.shape[1])):
        area = masks[:, k].sum(dim=(1, 2))
        shown = (masks[:, k] & ~cover).sum(dim=(1, 2))
        kept[:, k] &= shown >= MIN_VISIBLE * area
        cover |= masks[:, k] & kept[:, k, None, None]
    return kept


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """xyxy boxes (N,K,4) around each mask's pixels, x2 and y2 exclusive."""
    cols, rows = masks.any(dim=2), masks.any(dim=3)
    index = torch.arange(masks.shape[-1])

    def span(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.where(hit, index, masks.shape[-1]).amin(dim=-1)
        last = torch.where(hit, index, -1).amax(dim=-1)
        return first, last + 1

    x1, x2 = span(cols)
    y1, y2 = span(rows)
    return torch.stack([x1, y1, x2, y2], dim=-1).float()


def make_shapes(count: int, image_size: int, seed: int) -> ShapeScenes:
    """``count`` scenes of ``image_size`` pixels square; the same ``seed`` gives identical tensors."""
    g = torch.Generator().manual_seed(seed)
    n, k, size = count, MAX_OBJECTS, image_size
    images = _background(n, size, g)
    present = torch.arange(k) < torch.randint(1, k + 1, (n, 1), generator=g)
    labels = torch.randint(1, len(SHAPE_CLASSES) + 1, (n, k), generator=g)
    side = torch.round(size * (0.125 + 0.3125 * torch.rand(n, k, generator=g)))
    cx = side / 2 + (size - side) * torch.rand(n, k, generator=g)
    cy = side / 2 + (size - side) * torch.rand(n, k, generator=g)
    colors = _colors((n, k), g)
    masks = _masks(labels, cx, cy, side, size)
    kept = _visible(masks, present)
    for j in range(k):
        paint = (masks[:, j] & kept[:, j, None, None]).unsqueeze(1)
        images = torch.where(paint, colors[:, j, :, None, None], images)
    boxes = _tight_boxes(masks)
    return ShapeScenes(
        images=images.contiguous(),
        boxes=[boxes[i][kept[i]] for i in range(n)],
        labels=[labels[i][kept[i]] for i in range(n)],
        colors=[colors[i][kept[i]] for i in range(n)],
    )


class ShapesDataset(Dataset):
    """The scenes as detection items: an image and its ``boxes``, ``labels``, ``difficult`` (all False) and
    ``image_id`` (its index)."""

    def __init__(self, scenes: ShapeScenes) -> None:
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes.boxes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s = self.scenes
        labels = s.labels[index]
        target = {
            "boxes": s.boxes[index],
            "labels": labels,
            "difficult": torch.zeros_like(labels, dtype=torch.bool),
            "image_id": torch.tensor(index),
        }
        return s.images[index], target
