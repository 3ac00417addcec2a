"""Data sets by name (``dataset=<name>``): each has a settings schema and a builder of its LightningDataModule.

The in-memory sets (CIFAR-10/100 from an ``.npz`` or torchvision's files, scikit-learn's digits, a synthetic set) hold
their images as one uint8 tensor on the training device; ImageNet is a torchvision ImageFolder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytorch_lightning as pl
import torch

from rethink.data.imagenet import ImageFolderDataModule
from rethink.data.in_memory import ImageArrays, InMemoryImageDataModule
from rethink.data.sources import load_digits, load_npz, load_torchvision_cifar, make_synthetic, take_subsets
from rethink.errors import UserError
from rethink.settings.schema import DatasetSettings
from rethink.settings.typed import NonNegativeInt, PositiveInt, Ratio


@dataclass(frozen=True)
class CifarSettings(DatasetSettings):
    npz_path: str | None = None  # x_train, y_train, x_test, y_test; None: torchvision's files under root
    root: str = "data"
    download: bool = False


@dataclass(frozen=True)
class DigitsSettings(DatasetSettings):
    test_fraction: Ratio = 0.25
    split_seed: NonNegativeInt = 0


@dataclass(frozen=True)
class SyntheticSettings(DatasetSettings):
    num_train: PositiveInt = 256
    num_test: PositiveInt = 128
    data_seed: NonNegativeInt = 0


@dataclass(frozen=True)
class ImageNetSettings(DatasetSettings):
    root: str = "data/imagenet"
    num_workers: NonNegativeInt = 8


# training images of the data sets read from files (digits: 1,797 images less the test split; synthetic: num_train)
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "imagenet": 1_281_167}
DIGITS_IMAGES = 1_797


def train_images(settings: DatasetSettings) -> int | None:
    """The training images of a data set's settings (its ``train_subset`` when smaller), known without reading the
    data; None for a data set of unknown size."""
    if isinstance(settings, DigitsSettings):
        count = DIGITS_IMAGES - math.ceil(settings.test_fraction * DIGITS_IMAGES)  # scikit-learn's split
    elif isinstance(settings, SyntheticSettings):
        count = settings.num_train
    elif settings.name in TRAIN_IMAGES:
        count = TRAIN_IMAGES[settings.name]
    else:
        return None
    return count if settings.train_subset is None else min(count, settings.train_subset)


def load_arrays(settings: DatasetSettings) -> ImageArrays:
    """The in-memory images of a small data set (cifar10, cifar100, digits, synthetic)."""
    if isinstance(settings, CifarSettings):
        if settings.npz_path:
            arrays = load_npz(settings.npz_path, settings.num_classes, settings.image_size, settings.name)
        else:
            arrays = load_torchvision_cifar(settings.name, settings.root, settings.download)
    elif isinstance(settings, DigitsSettings):
        arrays = load_digits(settings.image_size, settings.test_fraction, settings.split_seed)
    elif isinstance(settings, SyntheticSettings):
        s = settings
        arrays = make_synthetic(s.num_train, s.num_test, s.num_classes, s.image_size, s.data_seed)
    else:
        raise UserError(f"dataset '{settings.name}' is not an in-memory data set.")
    return take_subsets(arrays, settings.train_subset, settings.test_subset)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images in [0,1] units (for data sets whose config leaves them null)."""
    x = images.float().div(255.0)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def _in_memory(settings: DatasetSettings, seed: int) -> pl.LightningDataModule:
    arrays = load_arrays(settings)
    mean, std = settings.mean, settings.std
    if mean is None or std is None:
        mean, std = channel_stats(arrays.x_train)
    return InMemoryImageDataModule(
        arrays, mean, std, settings.batch_size, settings.test_batch_size, settings.augment, seed
    )


def _imagenet(settings: ImageNetSettings, seed: int) -> pl.LightningDataModule:
    s = settings
    return ImageFolderDataModule(
        s.root, s.image_size, s.mean, s.std, s.batch_size, s.test_batch_size, s.num_workers, s.augment, seed,
        s.train_subset, s.test_subset,
    )  # fmt: skip


@dataclass(frozen=True)
class DatasetKind:
    """A data set option: its settings schema and the builder of its data module."""

    schema: type[DatasetSettings]
    build: Callable[..., pl.LightningDataModule]  # (settings, seed) -> data module (loads and checks the data)


DATASETS: dict[str, DatasetKind] = {
    "cifar10": DatasetKind(CifarSettings, _in_memory),
    "cifar100": DatasetKind(CifarSettings, _in_memory),
    "digits": DatasetKind(DigitsSettings, _in_memory),
    "imagenet": DatasetKind(ImageNetSettings, _imagenet),
    "synthetic": DatasetKind(SyntheticSettings, _in_memory),
}


def dataset_kind(name: str) -> DatasetKind:
    """The registered data set ``name``, or a :class:`UserError` listing them."""
    if name not in DATASETS:
        raise UserError(f"dataset.name={name!r} ({type(name).__name__}) is not known; accepted: {', '.join(DATASETS)}.")
    return DATASETS[name]


def build_datamodule(settings: DatasetSettings, seed: int) -> pl.LightningDataModule:
    """The data module of a data set's settings; loads (and validates) the data now, before any training."""
    return dataset_kind(settings.name).build(settings, seed)
