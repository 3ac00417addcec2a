"""Detection data: the generated shapes set, horizontal flips, the VOC reader on a tiny VOC tree written here, its
error messages and the data module's batches."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from rethink.detection.data import (
    DetectionDataSettings,
    build_detection_datamodule,
    collate,
    epoch_flips,
    hflip,
)
from rethink.detection.shapes import SHAPE_CLASSES, make_shapes
from rethink.detection.voc import VOC_CLASSES, VOCDataset
from rethink.errors import UserError
from rethink.settings.typed import parse

# --- the shapes set ---------------------------------------------------------------------------------------------


def test_shapes_are_deterministic_per_seed() -> None:
    a, b, c = make_shapes(8, 64, seed=0), make_shapes(8, 64, seed=0), make_shapes(8, 64, seed=1)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert all(torch.equal(x, y) for x, y in zip(a.labels, b.labels))
    assert not torch.equal(a.images, c.images)
    assert any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(a.boxes, c.boxes))


def _pixel_box(mask: torch.Tensor) -> list[float]:
    rows, cols = mask.nonzero(as_tuple=True)
    return [cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1]


def test_shapes_boxes_are_tight_around_their_objects() -> None:
    size = 128
    scenes = make_shapes(48, size, seed=3)
    assert scenes.images.shape == (48, 3, size, size) and scenes.images.dtype == torch.float32
    assert 0 <= scenes.images.min() and scenes.images.max() <= 1
    counts = [len(labels) for labels in scenes.labels]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1
    all_labels = torch.cat(scenes.labels)
    assert all_labels.dtype == torch.int64 and set(all_labels.tolist()) == {1, 2, 3}
    for image, boxes, colors in zip(scenes.images, scenes.boxes, scenes.colors):
        assert boxes.dtype == torch.float32 and (boxes >= 0).all() and (boxes <= size).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        sides = boxes[:, 2:] - boxes[:, :2]
        assert (sides >= 0.125 * size - 1).all() and (sides <= 0.4375 * size + 1).all()
        for k, (box, color) in enumerate(zip(boxes, colors)):
            shown = (image == color[:, None, None]).all(dim=0)  # the object's exact colour: its visible pixels
            assert shown.sum() > 0.2 * (box[2] - box[0]) * (box[3] - box[1])
            x1, y1, x2, y2 = _pixel_box(shown)
            assert box[0] <= x1 and box[1] <= y1 and x2 <= box[2] and y2 <= box[3]  # inside its box
            if k == len(boxes) - 1:  # drawn last, on top: the box is tight around its pixels
                assert torch.allclose(box, torch.tensor([x1, y1, x2, y2], dtype=torch.float32), atol=1)


def test_shapes_classes_differ_in_shape() -> None:
    """A square fills its box, a circle about pi/4 of it, a triangle half (seen on the topmost objects)."""
    scenes = make_shapes(64, 128, seed=5)
    fill: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for image, boxes, labels, colors in zip(scenes.images, scenes.boxes, scenes.labels, scenes.colors):
        box, color = boxes[-1], colors[-1]
        shown = (image == color[:, None, None]).all(dim=0).sum().item()
        fill[int(labels[-1])].append(shown / ((box[2] - box[0]) * (box[3] - box[1])).item())
    assert min(fill[1]) > 0.97 and 0.7 < min(fill[2]) and max(fill[2]) < 0.85
    assert 0.4 < min(fill[3]) and max(fill[3]) < 0.6


# --- flips ------------------------------------------------------------------------------------------------------


def test_hflip_mirrors_image_and_box() -> None:
    image = torch.zeros(3, 10, 20)
    image[:, 3:8, 2:7] = 1.0  # an object at x 2..7, y 3..8
    flipped, boxes = hflip(image, torch.tensor([[2.0, 3.0, 7.0, 8.0]]))
    assert torch.equal(boxes, torch.tensor([[13.0, 3.0, 18.0, 8.0]]))
    assert _pixel_box(flipped[0] == 1) == [13, 3, 18, 8]
    again, back = hflip(flipped, boxes)
    assert torch.equal(again, image) and torch.equal(back, torch.tensor([[2.0, 3.0, 7.0, 8.0]]))


def test_flips_are_seeded_by_seed_and_epoch() -> None:
    flips = epoch_flips(400, seed=1, epoch=2)
    assert torch.equal(flips, epoch_flips(400, seed=1, epoch=2))
    assert not torch.equal(flips, epoch_flips(400, seed=1, epoch=3))
    assert not torch.equal(flips, epoch_flips(400, seed=2, epoch=2))
    assert 150 < int(flips.sum()) < 250


def test_training_batches_flip_the_epochs_images() -> None:
    dm = build_detection_datamodule(DetectionDataSettings(num_train=16, num_test=4, image_size=64), seed=7)
    batch = next(iter(dm.train_dataloader()))
    flips = epoch_flips(16, seed=7, epoch=1)
    images, targets = dm.augment(batch, epoch=1)
    for original, target, image, augmented in zip(*batch, images, targets):
        i = int(target["image_id"])
        expected = hflip(original, target["boxes"]) if flips[i] else (original, target["boxes"])
        assert torch.equal(image, expected[0]) and torch.equal(augmented["boxes"], expected[1])
        assert torch.equal(augmented["labels"], target["labels"])
    assert dm.augment(batch, epoch=1)[0][0].equal(images[0])  # the same (seed, epoch): the same flips


class _Recorder(pl.LightningModule):
    """Records the boxes of every training and validation batch, per epoch and image_id."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[tuple[str, int, int], torch.Tensor] = {}

    def _record(self, stage: str, batch) -> None:
        for target in batch[1]:
            self.seen[(stage, self.current_epoch, int(target["image_id"]))] = target["boxes"]

    def training_step(self, batch, batch_idx):
        self._record("train", batch)
        return (self.weight**2).sum()

    def validation_step(self, batch, batch_idx):
        self._record("val", batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_trainer_flips_training_batches_by_epoch_and_never_test_batches() -> None:
    dm = build_detection_datamodule(DetectionDataSettings(num_train=8, num_test=4, image_size=32), seed=3)
    recorder = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
    )  # fmt: skip
    trainer.fit(recorder, datamodule=dm)
    for epoch in (0, 1):
        flips = epoch_flips(8, seed=3, epoch=epoch)
        for i in range(8):
            image, target = dm.train[i]
            expected = hflip(image, target["boxes"])[1] if flips[i] else target["boxes"]
            assert torch.equal(recorder.seen[("train", epoch, i)], expected), (epoch, i)
        for i in range(4):
            assert torch.equal(recorder.seen[("val", epoch, i)], dm.test[i][1]["boxes"])


# --- the data module --------------------------------------------------------------------------------------------


def test_shapes_datamodule_batches_have_the_documented_structure() -> None:
    settings = DetectionDataSettings(batch_size=4, test_batch_size=3, num_train=10, num_test=5, image_size=64)
    dm = build_detection_datamodule(settings, seed=0)
    assert dm.num_classes == 3 and dm.class_names == SHAPE_CLASSES
    train = list(dm.train_dataloader())
    assert [len(images) for images, _ in train] == [4, 4, 2]
    ids = sorted(int(t["image_id"]) for _, targets in train for t in targets)
    assert ids == list(range(10))
    images, targets = next(iter(dm.val_dataloader()))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == 3
    for i, (image, target) in enumerate(zip(images, targets)):
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        n = len(target["labels"])
        assert target["boxes"].shape == (n, 4) and target["boxes"].dtype == torch.float32
        assert target["labels"].dtype == torch.int64 and ((target["labels"] >= 1) & (target["labels"] <= 3)).all()
        assert target["difficult"].shape == (n,) and target["difficult"].dtype == torch.bool
        assert int(target["image_id"]) == i  # the test set in order, never flipped
        assert torch.equal(image, dm.test[i][0])


def test_train_and_test_shapes_differ_and_follow_data_seed() -> None:
    dm = build_detection_datamodule(DetectionDataSettings(num_train=4, num_test=4, image_size=64), seed=0)
    other = build_detection_datamodule(DetectionDataSettings(num_train=4, num_test=4, image_size=64), seed=9)
    reseeded = DetectionDataSettings(num_train=4, num_test=4, image_size=64, data_seed=1)
    assert not torch.equal(dm.train[0][0], dm.test[0][0])
    assert torch.equal(dm.train[0][0], other.train[0][0])  # the run's seed orders and flips, the data stays
    assert not torch.equal(dm.train[0][0], build_detection_datamodule(reseeded, seed=0).train[0][0])


def test_collate_keeps_lists_of_different_sizes() -> None:
    items = [
        (torch.zeros(3, 5, 7), {"labels": torch.tensor([1])}),
        (torch.zeros(3, 9, 4), {"labels": torch.tensor([2])}),
    ]
    images, targets = collate(items)
    assert [tuple(i.shape) for i in images] == [(3, 5, 7), (3, 9, 4)] and [int(t["labels"]) for t in targets] == [1, 2]


# --- PASCAL VOC -------------------------------------------------------------------------------------------------


def _annotation(name: str, objects: list[tuple[str, tuple[int, int, int, int], int]]) -> str:
    parts = [
        f"<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for cls, (x1, y1, x2, y2), difficult in objects
    ]
    return f"<annotation><folder>VOC</folder><filename>{name}.jpg</filename>{''.join(parts)}</annotation>"


def _write_voc(root: Path, year: str, splits: dict[str, dict[str, list]], sizes: dict[str, tuple[int, int]]) -> Path:
    """A VOCdevkit/VOC<year> tree: per split its image ids and their objects (class, VOC box, difficult)."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    for split, images in splits.items():
        (base / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))
        for image_id, objects in images.items():
            Image.new("RGB", sizes.get(image_id, (40, 30)), (200, 30, 30)).save(base / "JPEGImages" / f"{image_id}.jpg")
            (base / "Annotations" / f"{image_id}.xml").write_text(_annotation(image_id, objects))
    return base


VOC07 = {
    "trainval": {"000005": [("chair", (263, 211, 324, 339), 0), ("dog", (1, 2, 30, 25), 1)]},
    "test": {"000001": [("person", (8, 12, 40, 50), 0)]},
}


def test_voc_reads_boxes_labels_and_difficult_flags(tmp_path: Path) -> None:
    _write_voc(tmp_path, "2007", VOC07, {"000005": (500, 375), "000001": (60, 80)})
    train = VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)
    image, target = train[0]
    assert len(train) == 1 and image.shape == (3, 375, 500) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert torch.equal(target["boxes"], torch.tensor([[262.0, 210.0, 324.0, 339.0], [0.0, 1.0, 30.0, 25.0]]))
    assert target["labels"].tolist() == [VOC_CLASSES.index("chair") + 1, VOC_CLASSES.index("dog") + 1] == [9, 12]
    assert target["difficult"].tolist() == [False, True] and target["difficult"].dtype == torch.bool
    _, test_target = VOCDataset(tmp_path, ("2007",), "test", skip_empty=False)[0]
    assert test_target["boxes"].tolist() == [[7.0, 11.0, 40.0, 50.0]] and test_target["labels"].tolist() == [15]


def test_voc0712_trains_on_both_years_and_tests_on_2007(tmp_path: Path) -> None:
    _write_voc(tmp_path, "2007", VOC07, {})
    _write_voc(tmp_path, "2012", {"trainval": {"2008_000008": [("horse", (3, 4, 20, 22), 0)]}}, {})
    settings = DetectionDataSettings(source="voc0712", root=str(tmp_path), batch_size=2)
    dm = build_detection_datamodule(settings, seed=0)
    assert dm.num_classes == 20 and dm.class_names == VOC_CLASSES
    assert [Path(p).stem for p in dm.train.images] == ["000005", "2008_000008"]
    assert [Path(p).stem for p in dm.test.images] == ["000001"]
    images, targets = next(iter(dm.train_dataloader()))
    assert [tuple(i.shape) for i in images] == [(3, 30, 40), (3, 30, 40)]
    assert sorted(int(t["labels"][0]) for t in targets) == [9, 13]


def test_voc_errors_name_the_missing_folders(tmp_path: Path) -> None:
    settings = DetectionDataSettings(source="voc2007", root=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"data\.root='.*nowhere' does not exist"):
        build_detection_datamodule(settings, seed=0)
    base = _write_voc(tmp_path, "2007", VOC07, {})
    (base / "JPEGImages").rename(base / "images")
    with pytest.raises(UserError, match=r"no VOCdevkit/VOC2007/JPEGImages folder.*Point data\.root at the folder"):
        build_detection_datamodule(DetectionDataSettings(source="voc2007", root=str(tmp_path)), seed=0)
    (base / "images").rename(base / "JPEGImages")
    with pytest.raises(UserError, match=r"VOCdevkit/VOC2012/JPEGImages, VOCdevkit/VOC2012/Annotations"):
        build_detection_datamodule(DetectionDataSettings(source="voc0712", root=str(tmp_path)), seed=0)
    with pytest.raises(UserError, match=r"VOCdevkit/ or a folder in it\. Point data\.root at the folder that holds"):
        build_detection_datamodule(DetectionDataSettings(source="voc2007", root=str(tmp_path / "VOCdevkit")), seed=0)
    (base / "ImageSets/Main/test.txt").unlink()
    with pytest.raises(UserError, match=r"VOC2007 test split is missing.*VOCtest_06-Nov-2007\.tar"):
        build_detection_datamodule(DetectionDataSettings(source="voc2007", root=str(tmp_path)), seed=0)
    with pytest.raises(UserError, match=r"data\.source=voc2007 .* data\.root is not set"):
        parse(DetectionDataSettings, {"source": "voc2007"}, "data")


def test_voc_errors_name_the_bad_annotation(tmp_path: Path) -> None:
    base = _write_voc(tmp_path, "2007", VOC07, {})
    xml = base / "Annotations" / "000005.xml"
    xml.write_text("<annotation><object><name>dog</name>")
    with pytest.raises(UserError, match=r"000005\.xml cannot be read as XML"):
        VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)
    xml.write_text(_annotation("000005", [("dog", (1, 2, 30, 25), 0), ("unicorn", (3, 3, 9, 9), 0)]))
    with pytest.raises(UserError, match=r"000005\.xml has an object of class 'unicorn'"):
        VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)
    xml.write_text(_annotation("000005", [("dog", (30, 2, 10, 25), 0)]))
    with pytest.raises(UserError, match=r"000005\.xml: the dog box .* is empty"):
        VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)


def test_voc_images_without_objects(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Training skips them with a warning that counts them; testing keeps them; a split with none left is an error."""
    splits = {
        "trainval": {**VOC07["trainval"], "000007": []},
        "test": {"000001": [], "000002": VOC07["test"]["000001"]},
    }
    _write_voc(tmp_path, "2007", splits, {})
    with caplog.at_level(logging.WARNING, logger="rethink.detection.voc"):
        train = VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)
    assert [Path(p).stem for p in train.images] == ["000005"]
    assert "skipping 1 of 2 trainval images without objects" in caplog.text and "000007.xml" in caplog.text
    test = VOCDataset(tmp_path, ("2007",), "test", skip_empty=False)
    assert len(test) == 2 and test[0][1]["boxes"].shape == (0, 4) and test[0][1]["labels"].shape == (0,)
    _write_voc(tmp_path, "2007", {"trainval": {"000005": [], "000007": []}}, {})
    with pytest.raises(UserError, match=r"trainval split of VOC2007 .* has no image with an object"):
        VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True)


def test_voc_subset_is_fixed(tmp_path: Path) -> None:
    images = {f"{i:06d}": [("cat", (1, 1, 10, 10), 0)] for i in range(10)}
    _write_voc(tmp_path, "2007", {"trainval": images}, {})
    a = VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True, subset=4)
    b = VOCDataset(tmp_path, ("2007",), "trainval", skip_empty=True, subset=4)
    assert len(a) == 4 and a.images == b.images and a.images == sorted(a.images)
