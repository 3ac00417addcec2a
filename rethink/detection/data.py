"""The detection data module: the embedded shapes set or PASCAL VOC as ``(images, targets)`` batches.

A batch is ``images``, a list of (3,H,W) float tensors in [0,1] (sizes may differ), and ``targets``, a list of dicts
with ``boxes`` (float32 N×4 xyxy pixels), ``labels`` (int64 N, 1..C; 0 is the background), ``difficult`` (bool N)
and ``image_id`` (int64 scalar, the image's index in its split). Training images are flipped horizontally, boxes
too, on the device after the transfer, each with probability 0.5 drawn from (seed, epoch, image_id), so a run and
its resumption flip the same images whatever the workers, ranks or batch order. Test images are never augmented.
As in the classification data modules, every DDP process takes its own shard of one seeded order, so the Trainer
must not add samplers (``use_distributed_sampler=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from rethink.data.in_memory import ShardedBatchSampler
from rethink.detection.shapes import SHAPE_CLASSES, ShapesDataset, make_shapes
from rethink.detection.voc import VOC_CLASSES, VOCDataset
from rethink.distributed import rank_batch_size
from rethink.errors import UserError
from rethink.settings.typed import AtLeast, NonNegativeInt, PositiveInt

Item = tuple[torch.Tensor, dict[str, torch.Tensor]]
Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]
VOC_YEARS = {"voc2007": ("2007",), "voc0712": ("2007", "2012")}  # training years; the test set is VOC2007 test


@dataclass(frozen=True)
class DetectionDataSettings:
    """Where detection images come from and how they are batched."""

    source: Literal["shapes", "voc2007", "voc0712"] = "shapes"
    root: str | None = None  # VOC: the folder holding VOCdevkit/
    batch_size: PositiveInt = 4  # the global training batch, split over the DDP processes
    test_batch_size: PositiveInt = 8
    num_train: PositiveInt = 256  # shapes: generated training images
    num_test: PositiveInt = 64  # shapes: generated test images
    image_size: Annotated[int, AtLeast(32)] = 128  # shapes: the image side in pixels (VOC keeps its own sizes)
    data_seed: NonNegativeInt = 0  # shapes: training images from seed 2*data_seed, test images from 2*data_seed+1
    train_subset: PositiveInt | None = None  # VOC: at most this many training images (None: all)
    test_subset: PositiveInt | None = None  # VOC: at most this many test images (None: all)
    num_workers: NonNegativeInt = 0

    def validate(self, prefix: str) -> None:
        if self.source != "shapes" and not self.root:
            raise UserError(
                f"{prefix}.source={self.source} reads PASCAL VOC from files, and {prefix}.root is not set. Give "
                f"{prefix}.root=/path/to/the/folder/holding/VOCdevkit, or {prefix}.source=shapes for the embedded set."
            )


def collate(items: Sequence[Item]) -> Batch:
    """Items as one batch of lists (images of different sizes cannot be stacked)."""
    return [image for image, _ in items], [target for _, target in items]


def hflip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (C,H,W) and its xyxy boxes mirrored left to right: x1' = W - x2, x2' = W - x1."""
    width = image.shape[-1]
    x1, y1, x2, y2 = boxes.unbind(-1)
    return image.flip(-1), torch.stack([width - x2, y1, width - x1, y2], dim=-1)


def epoch_flips(size: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of ``size`` training images (by image_id) an epoch flips: a fair coin each, seeded by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.rand(size, generator=g) < 0.5


class _Batches(Dataset):
    """``dataset[list_of_indices]`` -> one collated batch, so a worker prepares whole batches."""

    def __init__(self, items: Dataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def __getitem__(self, indices: Sequence[int]) -> Batch:
        return collate([self.items[i] for i in indices])


class DetectionDataModule(pl.LightningDataModule):
    """Train and test loaders of detection items, with seeded horizontal flips of training images."""

    def __init__(
        self,
        train: Dataset,
        test: Dataset,
        class_names: Sequence[str],
        batch_size: int,
        test_batch_size: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train, self.test = train, test
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)  # without the background
        self.batch_size, self.test_batch_size = batch_size, test_batch_size
        self.num_workers, self.seed = num_workers, seed

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, items: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        rank, world = self._rank_world()
        sampler = ShardedBatchSampler(len(items), batch_size, shuffle, self.seed, rank, world)  # type: ignore[arg-type]
        return DataLoader(
            _Batches(items),
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        """This rank's batches: ``batch_size`` is the global batch, split over the DDP processes."""
        return self._loader(self.train, rank_batch_size(self.batch_size, self._rank_world()[1]), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test, self.test_batch_size, shuffle=False)

    test_dataloader = val_dataloader

    def augment(self, batch: Batch, epoch: int) -> Batch:
        """A training batch with the images that ``epoch`` flips (boxes included) mirrored."""
        flips = epoch_flips(len(self.train), self.seed, epoch)  # type: ignore[arg-type]
        images, targets = [], []
        for image, target in zip(*batch):
            if flips[int(target["image_id"])]:
                image, boxes = hflip(image, target["boxes"])
                target = {**target, "boxes": boxes}
            images.append(image)
            targets.append(target)
        return images, targets

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is not None and self.trainer.training:
            return self.augment(batch, self.trainer.current_epoch)
        return batch


def build_detection_datamodule(settings: DetectionDataSettings, seed: int, prefix: str = "data") -> DetectionDataModule:
    """The data module of ``settings``; generates the shapes or reads every VOC annotation now, before any training.
    ``seed`` orders the training batches and draws the flips; ``prefix`` is the settings' key in messages."""
    s = settings
    s.validate(prefix)
    if s.source == "shapes":
        train: Dataset = ShapesDataset(make_shapes(s.num_train, s.image_size, 2 * s.data_seed))
        test: Dataset = ShapesDataset(make_shapes(s.num_test, s.image_size, 2 * s.data_seed + 1))
        names: Sequence[str] = SHAPE_CLASSES
    else:
        root, key = str(s.root), f"{prefix}.root"
        train = VOCDataset(root, VOC_YEARS[s.source], "trainval", skip_empty=True, subset=s.train_subset, root_key=key)
        test = VOCDataset(root, ("2007",), "test", skip_empty=False, subset=s.test_subset, root_key=key)
        names = VOC_CLASSES
    return DetectionDataModule(train, test, names, s.batch_size, s.test_batch_size, s.num_workers, seed)
