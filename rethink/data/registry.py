"""Data sets by name (``dataset=<name>``): each option is a registered :class:`Dataset` subclass — its settings (the
dataclass fields), how it loads its data and what it declares: its input size (``image_size``), its training images
(known without reading them, for the dry run's estimates), whether it reports top-5 accuracy, its paper recipe
(``recipe``, from its config option) and its report metadata (title, order).

The in-memory sets (CIFAR-10/100 from an ``.npz`` or torchvision's files, scikit-learn's digits, a synthetic set) hold
their images as one uint8 tensor on the training device (:class:`InMemoryDataset`: a subclass gives ``arrays()``);
ImageNet is a torchvision ImageFolder. A data set of the user's own package is a subclass registered with
:func:`register_dataset` (its option's ``_target_`` imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

from rethink.data.imagenet import ImageFolderDataModule
from rethink.data.in_memory import ImageArrays, InMemoryImageDataModule
from rethink.data.sources import load_digits, load_npz, load_torchvision_cifar, make_synthetic, take_subsets
from rethink.kinds import Kinds
from rethink.options import offer_defaults
from rethink.settings.schema import DatasetSettings
from rethink.settings.typed import NonNegativeInt, PositiveInt, Ratio


@dataclass(frozen=True)
class Dataset(DatasetSettings):
    """A data set option: its settings, its data module and what it declares. Subclasses set ``option_name``."""

    option_name: ClassVar[str]  # the option's name (``dataset=<name>``, the settings' ``name``)
    title: ClassVar[str] = ""  # how the report names it (default: the name)
    order: ClassVar[int] = 100  # where its rows come in a table (the paper's data sets first)
    top5: ClassVar[bool] = False  # its runs log and report top-5 accuracy too

    @classmethod
    def record(cls) -> dict[str, Any]:
        """What a result records of this data set (``options.dataset``), so a report needs no import of it."""
        return {"name": cls.option_name, "title": cls.title or cls.option_name, "order": cls.order, "top5": cls.top5}

    def datamodule(self, seed: int) -> pl.LightningDataModule:
        """Its Lightning data module; loads (and validates) the data now, before any training."""
        raise NotImplementedError

    def all_train_images(self) -> int | None:
        """Its training images before ``train_subset`` (None: unknown without reading the data)."""
        return None

    def train_images(self) -> int | None:
        """The training images a run reads (``train_subset`` when smaller), known without reading the data."""
        count = self.all_train_images()
        return count if count is None or self.train_subset is None else min(count, self.train_subset)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images in [0,1] units (for data sets whose config leaves them null)."""
    x = images.float().div(255.0)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


@dataclass(frozen=True)
class InMemoryDataset(Dataset):
    """A data set held in memory as uint8 arrays; subclasses give :meth:`arrays`."""

    def arrays(self) -> ImageArrays:
        """All its images (before the subsets)."""
        raise NotImplementedError

    def subset_arrays(self) -> ImageArrays:
        """Its images with ``train_subset`` / ``test_subset`` taken."""
        return take_subsets(self.arrays(), self.train_subset, self.test_subset)

    def datamodule(self, seed: int) -> pl.LightningDataModule:
        arrays = self.subset_arrays()
        mean, std = self.mean, self.std
        if mean is None or std is None:
            mean, std = channel_stats(arrays.x_train)
        return InMemoryImageDataModule(arrays, mean, std, self.batch_size, self.test_batch_size, self.augment, seed)


DATASETS: Kinds[type[Dataset]] = Kinds(
    "dataset", Dataset, lambda cls: cls.__dict__.get("option_name"), "rethink.data.registry.Dataset"
)


def register_dataset(cls: type[Dataset]) -> type[Dataset]:
    """Class decorator: make ``cls`` the data set ``dataset=<cls.option_name>`` (offered as a config option when every
    setting has a default and no YAML file defines it)."""
    DATASETS.register(cls)
    offer_defaults("dataset", cls.option_name, cls, lambda: cls(name=cls.option_name))
    return cls


@dataclass(frozen=True)
class Cifar(InMemoryDataset):
    npz_path: str | None = None  # x_train, y_train, x_test, y_test; None: torchvision's files under root
    root: str = "data"
    download: bool = False

    def arrays(self) -> ImageArrays:
        if self.npz_path:
            return load_npz(self.npz_path, self.num_classes, self.image_size, self.name)
        return load_torchvision_cifar(self.name, self.root, self.download)

    def all_train_images(self) -> int:
        return 50_000


@register_dataset
@dataclass(frozen=True)
class Cifar10(Cifar):
    option_name, title, order = "cifar10", "CIFAR-10", 0


@register_dataset
@dataclass(frozen=True)
class Cifar100(Cifar):
    option_name, title, order = "cifar100", "CIFAR-100", 1


@register_dataset
@dataclass(frozen=True)
class Digits(InMemoryDataset):
    """scikit-learn's 8x8 digits, upsampled (1,797 images, a seeded test split)."""

    option_name, title = "digits", "digits (scikit-learn)"
    test_fraction: Ratio = 0.25
    split_seed: NonNegativeInt = 0

    def arrays(self) -> ImageArrays:
        return load_digits(self.image_size, self.test_fraction, self.split_seed)

    def all_train_images(self) -> int:
        return DIGITS_IMAGES - math.ceil(self.test_fraction * DIGITS_IMAGES)  # scikit-learn's split


DIGITS_IMAGES = 1_797


@register_dataset
@dataclass(frozen=True)
class Synthetic(InMemoryDataset):
    """Random images with a class-dependent shift (the fastest data set for tests)."""

    option_name, title = "synthetic", "synthetic"
    num_train: PositiveInt = 256
    num_test: PositiveInt = 128
    data_seed: NonNegativeInt = 0

    def arrays(self) -> ImageArrays:
        return make_synthetic(self.num_train, self.num_test, self.num_classes, self.image_size, self.data_seed)

    def all_train_images(self) -> int:
        return self.num_train


@register_dataset
@dataclass(frozen=True)
class ImageNet(Dataset):
    """ILSVRC-2012 as torchvision ImageFolders under ``root`` (train/, val/)."""

    option_name, title, order, top5 = "imagenet", "ImageNet", 2, True
    root: str = "data/imagenet"
    num_workers: NonNegativeInt = 8

    def datamodule(self, seed: int) -> pl.LightningDataModule:
        return ImageFolderDataModule(
            self.root, self.image_size, self.mean, self.std, self.batch_size, self.test_batch_size, self.num_workers,
            self.augment, seed, self.train_subset, self.test_subset,
        )  # fmt: skip

    def all_train_images(self) -> int:
        return 1_281_167


def train_images(settings: DatasetSettings) -> int | None:
    """The training images of a data set's settings (its ``train_subset`` when smaller), known without reading the
    data; None for a data set of unknown size."""
    return settings.train_images() if isinstance(settings, Dataset) else None


def load_arrays(settings: DatasetSettings) -> ImageArrays:
    """The in-memory images of an in-memory data set's settings, with its subsets taken."""
    if not isinstance(settings, InMemoryDataset):
        raise TypeError(f"dataset '{settings.name}' is not an in-memory data set.")
    return settings.subset_arrays()


def build_datamodule(settings: DatasetSettings, seed: int) -> pl.LightningDataModule:
    """The data module of a data set's settings; loads (and validates) the data now, before any training."""
    if not isinstance(settings, Dataset):
        raise TypeError(f"dataset '{settings.name}': settings of a registered Dataset class expected")
    return settings.datamodule(seed)
