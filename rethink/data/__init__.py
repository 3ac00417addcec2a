"""Data modules built from the ``dataset`` config group."""

from __future__ import annotations

from typing import Any, Mapping

import pytorch_lightning as pl
import torch

from rethink.data.imagenet import ImageFolderDataModule, check_imagenet_root
from rethink.data.in_memory import ImageArrays, InMemoryImageDataModule
from rethink.data.sources import load_digits, load_npz, load_torchvision_cifar, make_synthetic, take_subsets
from rethink.errors import UserError

DATASETS = ("cifar10", "cifar100", "digits", "imagenet", "synthetic")


def load_arrays(cfg: Mapping[str, Any]) -> ImageArrays:
    """The in-memory images of a small data set config (cifar10, cifar100, digits, synthetic)."""
    name = cfg["name"]
    if name in ("cifar10", "cifar100"):
        if cfg.get("npz_path"):
            arrays = load_npz(cfg["npz_path"], cfg["num_classes"], cfg["image_size"])
        else:
            arrays = load_torchvision_cifar(name, cfg["root"], bool(cfg.get("download", False)))
    elif name == "digits":
        arrays = load_digits(cfg["image_size"], cfg["test_fraction"], cfg["split_seed"])
    elif name == "synthetic":
        arrays = make_synthetic(
            cfg["num_train"], cfg["num_test"], cfg["num_classes"], cfg["image_size"], cfg["data_seed"]
        )
    else:
        raise UserError(f"unknown dataset '{name}'; accepted: {', '.join(DATASETS)}.")
    return take_subsets(arrays, cfg.get("train_subset"), cfg.get("test_subset"))


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images in [0,1] units (for data sets whose config leaves them null)."""
    x = images.float().div(255.0)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def build_datamodule(cfg: Mapping[str, Any], seed: int) -> pl.LightningDataModule:
    """The data module of a ``dataset`` config; loads (and validates) the data now, before any training."""
    if cfg["name"] == "imagenet":
        return ImageFolderDataModule(
            cfg["root"],
            cfg["image_size"],
            cfg["mean"],
            cfg["std"],
            cfg["batch_size"],
            cfg["test_batch_size"],
            cfg["num_workers"],
            cfg["augment"],
            seed,
            cfg.get("train_subset"),
            cfg.get("test_subset"),
        )
    arrays = load_arrays(cfg)
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        mean, std = channel_stats(arrays.x_train)
    return InMemoryImageDataModule(
        arrays, mean, std, cfg["batch_size"], cfg["test_batch_size"], bool(cfg["augment"]), seed
    )


__all__ = ["DATASETS", "ImageArrays", "build_datamodule", "check_imagenet_root", "load_arrays"]
