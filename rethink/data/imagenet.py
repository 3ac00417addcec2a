"""ImageNet as torchvision ImageFolder with the standard augmentation (docs/protocol.md#recipes-imagenet) and worker
processes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from rethink.data.calibration import calibration_indices
from rethink.distributed import rank_batch_size
from rethink.errors import UserError


def check_imagenet_root(root: str | Path) -> Path:
    """The root must hold ``train/`` and ``val/`` class folders; say so clearly before any training."""
    root = Path(root)
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise UserError(
            f"ImageNet root dataset.root='{root}' has no {' or '.join(s + '/' for s in missing)} folder. "
            "Point dataset.root (or RETHINK_IMAGENET_ROOT) at a directory with train/<class>/*.JPEG and "
            "val/<class>/*.JPEG (torchvision ImageFolder layout)."
        )
    return root


class ImageFolderDataModule(pl.LightningDataModule):
    """Train: RandomResizedCrop(224) + flip; test: Resize(256) + CenterCrop(224); both normalised."""

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        test_batch_size: int,
        num_workers: int,
        augment: bool,
        seed: int,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        super().__init__()
        self.root = check_imagenet_root(root)
        self.image_size, self.mean, self.std = image_size, list(mean), list(std)
        self.batch_size, self.test_batch_size, self.num_workers = batch_size, test_batch_size, num_workers
        self.augment, self.seed = augment, seed
        self.train_subset, self.test_subset = train_subset, test_subset

    def _transform(self, train: bool):
        from torchvision import transforms as T

        norm = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        if train and self.augment:
            return T.Compose([T.RandomResizedCrop(self.image_size), T.RandomHorizontalFlip(), *norm])
        return T.Compose([T.Resize(int(self.image_size * 256 / 224)), T.CenterCrop(self.image_size), *norm])

    def _loader(self, split: str, batch_size: int, shuffle: bool, subset: int | None) -> DataLoader:
        from torchvision.datasets import ImageFolder

        dataset = ImageFolder(str(self.root / split), transform=self._transform(train=shuffle))
        if subset is not None and subset < len(dataset):
            dataset = Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:subset])
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        sampler = DistributedSampler(dataset, world, rank, shuffle=shuffle, seed=self.seed) if world > 1 else None
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            generator=generator,
        )

    def calibration_batches(
        self, batches: int, images_per_class: int | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Training images for a data-driven pruner (:func:`~rethink.data.calibration.calibration_indices`: ``batches``
        batches of an order seeded by the cell's seed, or ``images_per_class`` of every class), with the test-time
        transform (no augmentation), on the CPU; the same on every rank."""
        from torchvision.datasets import ImageFolder

        dataset = ImageFolder(str(self.root / "train"), transform=self._transform(train=False))
        labels = torch.as_tensor(dataset.targets)
        chosen = calibration_indices(labels, self.seed, batches, self.batch_size, images_per_class)
        subset = Subset(dataset, torch.cat(chosen).tolist())
        return list(DataLoader(subset, batch_size=self.batch_size, num_workers=self.num_workers))

    def train_dataloader(self) -> DataLoader:
        """This rank's batches: ``batch_size`` is the global batch, split over the DDP processes."""
        world = self.trainer.world_size if self.trainer is not None else 1
        return self._loader("train", rank_batch_size(self.batch_size, world), shuffle=True, subset=self.train_subset)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.test_batch_size, shuffle=False, subset=self.test_subset)

    test_dataloader = val_dataloader
