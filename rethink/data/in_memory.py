"""A LightningDataModule holding a whole small image data set as one uint8 tensor on the training device.

Batches are gathered by index from that tensor (no per-image Python work, no worker processes) and augmented on the
device in ``on_after_batch_transfer``. Under DDP every rank takes its own shard of one shared, seeded permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from rethink.data.augment import normalize, random_crop_flip
from rethink.data.calibration import calibration_indices
from rethink.distributed import rank_batch_size


@dataclass
class ImageArrays:
    """A split data set: uint8 images (N,C,H,W) and int64 labels (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class _IndexedBatches(torch.utils.data.Dataset):
    """Dataset whose items are whole batches: ``ds[list_of_indices] -> (images, labels)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.images.device)
        return self.images[idx], self.labels[idx]


class ShardedBatchSampler(Sampler[list[int]]):
    """Index batches of this rank's shard of a permutation seeded by (seed, epoch); sequential when not shuffling.

    Shuffled shards are padded so every rank gets the same number of batches (DDP needs equal step counts).
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def _shard(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.size, self.world_size))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.size, generator=g).tolist()
        per_rank = -(-self.size // self.world_size)
        perm += perm[: per_rank * self.world_size - self.size]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        shard = self._shard()
        for start in range(0, len(shard), self.batch_size):
            yield shard[start : start + self.batch_size]

    def __len__(self) -> int:
        n = -(-self.size // self.world_size) if self.shuffle else len(range(self.rank, self.size, self.world_size))
        return -(-n // self.batch_size)


class InMemoryImageDataModule(pl.LightningDataModule):
    """Train/test loaders over in-memory uint8 images with on-device crop/flip/normalise."""

    def __init__(
        self,
        arrays: ImageArrays,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        test_batch_size: int,
        augment: bool,
        seed: int,
    ) -> None:
        super().__init__()
        self.arrays = arrays
        self.mean, self.std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        self.batch_size, self.test_batch_size = batch_size, test_batch_size
        self.augment, self.seed = augment, seed
        self._generator: torch.Generator | None = None
        self._epoch_seeded = -1

    @property
    def num_train(self) -> int:
        return len(self.arrays.y_train)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool) -> DataLoader:
        device = self._device()
        rank, world = self._rank_world()
        dataset = _IndexedBatches(images.to(device), labels.to(device))
        sampler = ShardedBatchSampler(len(labels), batch_size, shuffle, self.seed, rank, world)
        return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        """This rank's batches: ``batch_size`` is the global batch, split over the DDP processes."""
        batch_size = rank_batch_size(self.batch_size, self._rank_world()[1])
        return self._loader(self.arrays.x_train, self.arrays.y_train, batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.arrays.x_test, self.arrays.y_test, self.test_batch_size, shuffle=False)

    test_dataloader = val_dataloader

    def _augment_generator(self, device: torch.device) -> torch.Generator:
        """A device generator re-seeded from (seed, epoch, rank) at each epoch, so resumed runs augment identically."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if self._generator is None or self._generator.device != device or self._epoch_seeded != epoch:
            rank, _ = self._rank_world()
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed((self.seed * 1_000_003 + epoch) * 101 + rank)
            self._epoch_seeded = epoch
        return self._generator

    def calibration_batches(
        self, batches: int, images_per_class: int | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Training images for a data-driven pruner (:func:`~rethink.data.calibration.calibration_indices`: ``batches``
        batches of an order seeded by the cell's seed, or ``images_per_class`` of every class), normalised, never
        augmented, on the CPU; the same on every rank."""
        chosen = calibration_indices(self.arrays.y_train, self.seed, batches, self.batch_size, images_per_class)
        x, y = self.arrays.x_train, self.arrays.y_train
        return [(normalize(x[index], self.mean, self.std), y[index]) for index in chosen]

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        if training and self.augment:
            images = random_crop_flip(images, padding=4, generator=self._augment_generator(images.device))
        return normalize(images, self.mean.to(images.device), self.std.to(images.device)), labels
