"""Loaders that turn a data set's files into :class:`ImageArrays` (uint8 N,C,H,W images, int64 labels)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rethink.data.in_memory import ImageArrays
from rethink.errors import UserError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_ENV = {"cifar10": "RETHINK_CIFAR10_NPZ", "cifar100": "RETHINK_CIFAR100_NPZ"}  # conf/paths/default.yaml


def cifar_sources(name: str) -> str:
    """The ways to give rethink a CIFAR data set, for the message of data that is missing."""
    return (
        f"Give it the data with the environment variable {NPZ_ENV[name]}=/path/to/{name}.npz or the override "
        f"dataset.npz_path=/path/to/{name}.npz (an .npz with {', '.join(NPZ_KEYS)}), or put torchvision's {name} "
        "files under dataset.root (dataset.download=true fetches them there when online)."
    )


def _as_nchw_uint8(images: np.ndarray, name: str, image_size: int, source: str) -> torch.Tensor:
    """Accept NHWC or NCHW uint8 with 3 channels of ``image_size``; anything else is a user error."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UserError(
            f"{source}: '{name}' has dtype {images.dtype} and shape {images.shape}; expected uint8 images of shape "
            f"(N, {image_size}, {image_size}, 3) or (N, 3, {image_size}, {image_size})."
        )
    t = torch.from_numpy(np.ascontiguousarray(images))
    if t.shape[1:] == (image_size, image_size, 3):
        t = t.permute(0, 3, 1, 2)
    if t.shape[1:] != (3, image_size, image_size):
        raise UserError(
            f"{source}: '{name}' has shape {tuple(images.shape)}; expected (N, {image_size}, {image_size}, 3) or "
            f"(N, 3, {image_size}, {image_size}) for this data set."
        )
    return t.contiguous()


def _labels(labels: np.ndarray, name: str, count: int, num_classes: int, source: str) -> torch.Tensor:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != count or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(
            f"{source}: '{name}' has dtype {labels.dtype} and shape {labels.shape}; expected {count} integer labels "
            "(one per image)."
        )
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(
            f"{source}: '{name}' holds labels {int(labels.min())}..{int(labels.max())}; this data set has "
            f"{num_classes} classes (0..{num_classes - 1}). Check dataset.npz_path points at the right data set."
        )
    return torch.from_numpy(labels.astype(np.int64))


def load_npz(path: str | Path, num_classes: int, image_size: int, name: str = "cifar10") -> ImageArrays:
    """Read data set ``name`` from an .npz holding ``x_train, y_train, x_test, y_test``; validate keys, shapes,
    dtypes and labels."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: dataset.npz_path='{path}'. {cifar_sources(name)}")
    try:
        with np.load(path) as data:
            missing = [k for k in NPZ_KEYS if k not in data.files]
            if missing:
                raise UserError(
                    f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(data.files) or 'none'}. "
                    f"The .npz must hold {', '.join(NPZ_KEYS)}."
                )
            arrays = {k: data[k] for k in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not a readable .npz file ({exc}); re-create or re-download it.") from None
    x_train = _as_nchw_uint8(arrays["x_train"], "x_train", image_size, str(path))
    x_test = _as_nchw_uint8(arrays["x_test"], "x_test", image_size, str(path))
    return ImageArrays(
        x_train,
        _labels(arrays["y_train"], "y_train", len(x_train), num_classes, str(path)),
        x_test,
        _labels(arrays["y_test"], "y_test", len(x_test), num_classes, str(path)),
    )


def load_torchvision_cifar(name: str, root: str | Path, download: bool) -> ImageArrays:
    """CIFAR-10/100 from torchvision's files under ``root`` (downloaded there when ``download`` and online)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        train, test = cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:
        downloading = f" and could not be downloaded ({exc})" if download else ""
        raise UserError(
            f"{name}: no data. dataset.npz_path is not set and torchvision's files are not under "
            f"dataset.root='{root}'{downloading}. {cifar_sources(name)}"
        ) from None
    num_classes = 10 if name == "cifar10" else 100
    x_train, x_test = (_as_nchw_uint8(np.asarray(d.data), "data", 32, str(root)) for d in (train, test))
    return ImageArrays(
        x_train,
        _labels(np.asarray(train.targets), "targets", len(x_train), num_classes, str(root)),
        x_test,
        _labels(np.asarray(test.targets), "targets", len(x_test), num_classes, str(root)),
    )


def load_digits(image_size: int, test_fraction: float, split_seed: int) -> ImageArrays:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) upsampled to image_size, grey -> 3 channels.

    The train/test split is stratified and fixed by ``split_seed`` (independent of the run's seed).
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (N,1,8,8) in [0,1]
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=digits.target, random_state=split_seed
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return ImageArrays(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def make_synthetic(num_train: int, num_test: int, num_classes: int, image_size: int, seed: int) -> ImageArrays:
    """Random uint8 images whose brightness pattern depends on the class, so a model can learn something."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(num_classes, 3, image_size, image_size, generator=g)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.rand(n, 3, image_size, image_size, generator=g)
        return ((0.5 * noise + 0.5 * patterns[labels]) * 255).to(torch.uint8), labels

    x_train, y_train = split(num_train)
    x_test, y_test = split(num_test)
    return ImageArrays(x_train, y_train, x_test, y_test)


def take_subsets(arrays: ImageArrays, train_subset: int | None, test_subset: int | None) -> ImageArrays:
    """The first N images of a fixed shuffle (seed 0, independent of the run's seed) of each split."""

    def take(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if n is None or n >= len(y):
            return x, y
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:n]
        return x[idx], y[idx]

    x_train, y_train = take(arrays.x_train, arrays.y_train, train_subset)
    x_test, y_test = take(arrays.x_test, arrays.y_test, test_subset)
    return ImageArrays(x_train, y_train, x_test, y_test)
