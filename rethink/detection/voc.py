"""PASCAL VOC detection from the standard ``VOCdevkit/VOC2007`` (and ``VOC2012``) layout, never downloaded.

Files are listed by ``torchvision.datasets.VOCDetection(root, year, image_set, download=False)``; every annotation of
a split is read when the split is opened, so a missing folder, a broken XML, an unknown class or a bad box stops the
run before any training. Targets hold ``boxes`` (float32 xyxy; VOC's 1-based ``xmin``/``ymin`` made 0-based by
subtracting 1, ``xmax``/``ymax`` kept, as torchvision's references do), ``labels`` (int64, 1..20 in VOC's class
order, 0 being the background) and ``difficult`` (bool). Difficult objects stay in the targets (the model may train
on them; the mAP ignores them).

Images without any object: a training split skips them, with a warning that counts them and names the first few;
a test split keeps them (every detection on them is a false positive). A split left with no image is an error.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import torch
from torch.utils.data import Dataset

from rethink.errors import UserError

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_FOLDERS = ("JPEGImages", "Annotations", "ImageSets/Main")
_LABELS = {name: i + 1 for i, name in enumerate(VOC_CLASSES)}


def check_voc_root(root: str | Path, years: tuple[str, ...], root_key: str = "root") -> Path:
    """``root`` when it holds ``VOCdevkit/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}`` for every year; else a
    :class:`UserError` naming the missing folders and the setting ``root_key`` to fix."""
    root = Path(root)
    fix = (
        f"Point {root_key} at the folder that holds VOCdevkit/ (the PASCAL VOC tars extract to "
        "VOCdevkit/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}); nothing is downloaded."
    )
    if not root.is_dir():
        raise UserError(f"{root_key}='{root}' does not exist or is not a folder. {fix}")
    missing = [
        f"VOCdevkit/VOC{y}/{f}" for y in years for f in VOC_FOLDERS if not (root / f"VOCdevkit/VOC{y}/{f}").is_dir()
    ]
    if missing:
        inside = " It looks like VOCdevkit/ or a folder in it." if root.name.startswith(("VOCdevkit", "VOC20")) else ""
        raise UserError(f"{root_key}='{root}' has no {', '.join(missing)} folder.{inside} {fix}")
    return root


def _split_file(root: Path, year: str, image_set: str, root_key: str) -> None:
    path = root / f"VOCdevkit/VOC{year}/ImageSets/Main/{image_set}.txt"
    if not path.is_file():
        tar = "VOCtest_06-Nov-2007.tar" if image_set == "test" else f"VOC{year}'s trainval tar"
        raise UserError(
            f"The VOC{year} {image_set} split is missing: there is no {path}. Extract {tar} into {root_key}='{root}' "
            "(it adds its files under VOCdevkit/)."
        )


def _number(obj: ET.Element, key: str, path: str) -> float:
    text = obj.findtext(f"bndbox/{key}")
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"VOC annotation {path}: an object's bndbox/{key} is {text!r}, not a number.") from None


def read_annotation(path: str) -> dict[str, torch.Tensor]:
    """The ``boxes``, ``labels`` and ``difficult`` of one VOC annotation XML; a :class:`UserError` naming the file for
    XML that does not parse, an unknown class or an empty or inverted box."""
    try:
        objects = ET.parse(path).getroot().findall("object")
    except (ET.ParseError, OSError) as exc:
        raise UserError(f"VOC annotation {path} cannot be read as XML ({exc}); restore it from the VOC tar.") from None
    boxes, labels, difficult = [], [], []
    for obj in objects:
        name = (obj.findtext("name") or "").strip()
        if name not in _LABELS:
            raise UserError(
                f"VOC annotation {path} has an object of class {name!r}, which is not one of VOC's 20 classes "
                f"({', '.join(VOC_CLASSES)}). Fix or remove that object."
            )
        x1, y1, x2, y2 = (_number(obj, key, path) for key in ("xmin", "ymin", "xmax", "ymax"))
        box = [x1 - 1, y1 - 1, x2, y2]
        if not (box[2] > box[0] and box[3] > box[1]):
            raise UserError(f"VOC annotation {path}: the {name} box {[x1, y1, x2, y2]} (xmin,ymin,xmax,ymax) is empty.")
        boxes.append(box)
        labels.append(_LABELS[name])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }


class VOCDataset(Dataset):
    """Images (3,H,W float in [0,1]) and targets of ``image_set`` (``trainval`` or ``test``) over ``years``.

    ``skip_empty`` drops images without objects (training); ``subset`` keeps that many images of a permutation seeded
    by 0 (the same on every run and rank) before the annotations are read.
    """

    def __init__(
        self,
        root: str | Path,
        years: tuple[str, ...],
        image_set: str,
        skip_empty: bool,
        subset: int | None = None,
        root_key: str = "root",
    ) -> None:
        from torchvision.datasets import VOCDetection

        root = check_voc_root(root, years, root_key)
        pairs: list[tuple[str, str]] = []
        for year in years:
            _split_file(root, year, image_set, root_key)
            listed = VOCDetection(str(root), year=year, image_set=image_set, download=False)
            pairs += zip(listed.images, listed.annotations)
        if subset is not None and subset < len(pairs):
            order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))[:subset]
            pairs = [pairs[i] for i in sorted(order.tolist())]
        for image, _ in pairs:
            if not os.path.isfile(image):
                raise UserError(f"VOC image {image} (listed in the {image_set} split) is missing; restore it.")
        items = [(image, read_annotation(xml)) for image, xml in pairs]
        empty = [xml for (_, xml), (_, target) in zip(pairs, items) if len(target["labels"]) == 0]
        if skip_empty and empty:
            shown = ", ".join(empty[:3]) + (", ..." if len(empty) > 3 else "")
            log.warning("skipping %d of %d %s images without objects (%s)", len(empty), len(items), image_set, shown)
            items = [item for item in items if len(item[1]["labels"])]
        if not items:
            raise UserError(
                f"The VOC {image_set} split of {', '.join('VOC' + y for y in years)} under {root_key}='{root}' has no "
                f"image with an object; check its ImageSets/Main/{image_set}.txt and Annotations/."
            )
        self.images = [image for image, _ in items]
        self.targets = [target for _, target in items]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision.io import ImageReadMode, read_image

        image = read_image(self.images[index], mode=ImageReadMode.RGB).float().div_(255.0)
        return image, {**self.targets[index], "image_id": torch.tensor(index)}
