"""Data: on-device augmentation equals torchvision's per-image transforms, sharding, loaders and bad-data messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from rethink.data import DATASETS, DatasetSettings, build_datamodule, check_imagenet_root, load_arrays
from rethink.data.augment import crop_flip, normalize, random_crop_flip
from rethink.data.in_memory import ShardedBatchSampler
from rethink.data.sources import load_npz, load_torchvision_cifar
from rethink.errors import UserError
from rethink.settings import parse

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
RECIPE = {"epochs": 2, "lr": 0.1, "milestone_fractions": [0.5], "finetune_epochs": 1, "finetune_lr": 0.001}


def _dataset(name: str, **settings: object) -> DatasetSettings:
    """The typed settings of data set ``name`` (defaults for what a test leaves out)."""
    base = {"name": name, "num_classes": 10, "image_size": 32, "batch_size": 32, "test_batch_size": 32}
    return parse(DATASETS.classes[name], {**base, "recipe": RECIPE, **settings}, "dataset")


def test_crop_flip_equals_torchvision_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    dy, dx = torch.tensor([0, 8, 3, 4, 8, 1]), torch.tensor([0, 8, 5, 0, 2, 7])
    flip = torch.tensor([False, True, True, False, False, True])
    batched = crop_flip(images, 4, dy, dx, flip)
    for i in range(6):
        expected = TF.crop(TF.pad(images[i], [4]), int(dy[i]), int(dx[i]), 32, 32)
        expected = TF.hflip(expected) if flip[i] else expected
        assert torch.equal(batched[i], expected), f"image {i}"


def test_random_crop_flip_is_seeded_and_covers_all_offsets() -> None:
    images = torch.zeros(4000, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 0, 0] = 255  # a marker pixel: where it lands tells the offset
    first = random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    again = random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    landed = {tuple(p) for p in (first[:, 0] == 255).nonzero()[:, 1:].tolist()}
    # marker at (r, c) with r, c in 0..4 (shifted) and its mirror columns 3..7: every offset in 0..8 occurs
    assert {r for r, _ in landed} == set(range(5)) and {c for _, c in landed} == set(range(8))


def test_normalize_equals_to_tensor_and_normalize() -> None:
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    expected = TF.normalize(TF.to_tensor(pil), MEAN, STD)
    got = normalize(image[None], torch.tensor(MEAN), torch.tensor(STD))[0]
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sharded_sampler_partitions_a_seeded_permutation(world: int) -> None:
    samplers = [ShardedBatchSampler(103, 10, True, seed=5, rank=r, world_size=world) for r in range(world)]
    batches = [list(s) for s in samplers]
    assert len({len(b) for b in batches}) == 1 and all(len(b) == len(s) for b, s in zip(batches, samplers))
    seen = [i for b in batches for batch in b for i in batch]
    assert set(seen) == set(range(103)) and len(seen) == -(-103 // world) * world
    assert [list(s) for s in samplers] == batches  # same epoch -> same order
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != batches[0]


def test_sequential_sampler_shards_without_padding() -> None:
    shards = [[i for b in ShardedBatchSampler(10, 3, False, 0, r, 3) for i in b] for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_digits_split_is_fixed_stratified_and_real() -> None:
    cfg = _dataset("digits", test_fraction=0.25, split_seed=0)
    a, b = load_arrays(cfg), load_arrays(cfg)
    assert a.x_train.shape == (1347, 3, 32, 32) and a.x_test.shape == (450, 3, 32, 32)
    assert a.x_train.dtype == torch.uint8 and torch.equal(a.x_train, b.x_train)
    per_class = torch.cat([a.y_train, a.y_test]).bincount()
    assert ((a.y_test.bincount() - 0.25 * per_class).abs() <= 1).all()  # stratified: a quarter of every class
    assert torch.equal(a.x_train[:, 0], a.x_train[:, 2])  # grey replicated to 3 channels


def test_subsets_take_a_fixed_seed_independent_slice() -> None:
    cfg = dict(num_train=100, num_test=50, num_classes=10, image_size=8, data_seed=0)
    full = load_arrays(_dataset("synthetic", **cfg))
    sub = load_arrays(_dataset("synthetic", **cfg, train_subset=30, test_subset=20))
    assert sub.x_train.shape[0] == 30 and sub.x_test.shape[0] == 20
    matches = (full.x_train[None] == sub.x_train[:, None]).flatten(2).all(-1).any(1)
    assert bool(matches.all())


def test_datamodule_yields_normalised_batches_and_full_test_set() -> None:
    cfg = _dataset(
        "synthetic",
        num_train=70,
        num_test=50,
        num_classes=10,
        image_size=32,
        data_seed=0,
        batch_size=32,
        test_batch_size=20,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        augment=True,
    )
    dm = build_datamodule(cfg, seed=0)
    train = list(dm.train_dataloader())
    assert [len(y) for _, y in train] == [32, 32, 6]
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert x.dtype == torch.float32 and x.shape == (20, 3, 32, 32) and -2.01 <= float(x.min()) <= float(x.max()) <= 2.01
    assert sum(len(y) for _, y in dm.val_dataloader()) == 50


class _FakeTrainer:
    """What the data module reads of a DDP trainer: this process's rank and the number of processes."""

    training = False

    def __init__(self, rank: int, world_size: int) -> None:
        self.global_rank, self.world_size = rank, world_size
        self.strategy = type("Strategy", (), {"root_device": torch.device("cpu")})()


@pytest.mark.parametrize("world", [1, 2, 4])
def test_batch_size_is_the_global_batch_split_over_the_processes(world: int) -> None:
    cfg = _dataset("synthetic", num_train=1000, num_test=10, data_seed=0, batch_size=64, mean=[0.5] * 3, std=[0.5] * 3)
    batches = []
    for rank in range(world):
        dm = build_datamodule(cfg, seed=0)
        dm.trainer = _FakeTrainer(rank, world)
        batches.append([len(y) for _, y in dm.train_dataloader()])
    # every rank: 64 / world images per step, and as many steps per epoch as one process with 64 (ceil(1000/64))
    assert all(sizes[:-1] == [64 // world] * 15 and len(sizes) == 16 for sizes in batches)
    assert sum(sum(sizes) for sizes in batches) >= 1000  # the shards cover the epoch (padded to equal length)


def test_global_batch_that_the_processes_do_not_divide_is_refused() -> None:
    cfg = _dataset("synthetic", num_train=100, num_test=10, data_seed=0, batch_size=63, mean=[0.5] * 3, std=[0.5] * 3)
    dm = build_datamodule(cfg, seed=0)
    dm.trainer = _FakeTrainer(0, 2)
    with pytest.raises(UserError, match=r"dataset.batch_size=63 is the global batch.* 2 DDP processes.*=62 or 64"):
        dm.train_dataloader()


def test_real_cifar10_npz_loads(cifar10_npz: Path) -> None:
    arrays = load_npz(cifar10_npz, 10, 32)
    assert arrays.x_train.shape == (50000, 3, 32, 32) and arrays.x_test.shape == (10000, 3, 32, 32)
    assert arrays.y_train.bincount().tolist() == [5000] * 10


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


GOOD = dict(
    x_train=np.zeros((4, 32, 32, 3), np.uint8),
    y_train=np.arange(4),
    x_test=np.zeros((2, 32, 32, 3), np.uint8),
    y_test=np.arange(2),
)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({k: v for k, v in GOOD.items() if k != "y_test"}, "missing array(s) y_test"),
        ({**GOOD, "x_train": np.zeros((4, 28, 28, 3), np.uint8)}, "'x_train' has shape (4, 28, 28, 3)"),
        ({**GOOD, "x_test": np.zeros((2, 32, 32, 3), np.float32)}, "'x_test' has dtype float32"),
        ({**GOOD, "y_train": np.arange(3)}, "expected 4 integer labels"),
        ({**GOOD, "y_test": np.array([0, 12])}, "holds labels 0..12; this data set has 10 classes"),
    ],
)
def test_bad_npz_is_reported(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(UserError) as err:
        load_npz(_npz(tmp_path, **arrays), 10, 32)
    assert message in str(err.value)


def test_missing_and_corrupt_npz_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="data file not found: dataset.npz_path='.*nope.npz'"):
        load_npz(tmp_path / "nope.npz", 10, 32)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_npz(corrupt, 10, 32)


def test_missing_cifar_files_name_every_way_to_give_the_data(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_torchvision_cifar("cifar100", tmp_path, download=False)
    assert str(err.value).startswith(
        f"cifar100: no data. dataset.npz_path is not set and torchvision's files are not under "
        f"dataset.root='{tmp_path}'. Give it the data with the environment variable "
        "RETHINK_CIFAR100_NPZ=/path/to/cifar100.npz or the override dataset.npz_path=/path/to/cifar100.npz"
    )


def test_imagenet_root_needs_train_and_val(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match=r"has no val/ folder.*train/<class>"):
        check_imagenet_root(tmp_path)
    (tmp_path / "val").mkdir()
    assert check_imagenet_root(tmp_path) == tmp_path


def test_imagenet_folder_batch_is_split_over_the_processes(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(5):
                Image.new("RGB", (40, 30), (i * 40, 0, 0)).save(tmp_path / split / label / f"{i}.jpg")
    cfg = _dataset(
        "imagenet", root=str(tmp_path), num_classes=2, image_size=16, batch_size=4, num_workers=0, mean=MEAN, std=STD
    )
    sizes = []
    for rank in range(2):
        dm = build_datamodule(cfg, seed=0)
        dm.trainer = _FakeTrainer(rank, 2)
        sizes.append([len(y) for _, y in dm.train_dataloader()])
    assert sizes == [[2, 2, 1], [2, 2, 1]]  # 10 images: 5 per rank, 2 per step (global 4), 3 steps as one process
