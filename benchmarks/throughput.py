"""Training throughput of ResNet-56 on CIFAR-10: this project's Lightning path vs. the reference code's plain loop.

Both paths train the same model (``rethink.arch.build(default_spec("resnet56", 10))``) with the same SGD (lr 0.1,
momentum 0.9, weight decay 1e-4) at batch 64 on the CPU, from the same real CIFAR-10 .npz:

(a) ``rethink``: ``InMemoryImageDataModule`` (uint8 images in one tensor, batched crop/flip/normalise in
    ``on_after_batch_transfer``) + ``ClassificationModule`` under a ``pytorch_lightning.Trainer`` (no logger,
    checkpointing, progress bar or validation);
(b) reference: a PIL-image Dataset with torchvision's RandomCrop(32, 4) / RandomHorizontalFlip / ToTensor / Normalize,
    a shuffling ``DataLoader`` with ``--workers`` worker processes (1, as in the reference code) and a plain loop.

Each path runs ``--warmup`` untimed steps, then ``--steps`` timed ones; the clock covers whole iterations (fetching and
augmenting the batch, forward, backward, optimizer step, per-step bookkeeping) from the end of the last warm-up step to
the end of the last step. The two paths alternate ``--repeats`` times and the medians are reported, with the ratio
(a)/(b) (above 1: the project's path is faster).

Run: ``make benchmark`` (which runs ``python benchmarks/throughput.py`` with RETHINK_CIFAR10_NPZ set), or
``python benchmarks/throughput.py --npz PATH [--steps 30] [--warmup 5] [--repeats 2] [--threads N] [--workers 1]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from rethink.arch import build, default_spec
from rethink.data.in_memory import ImageArrays, InMemoryImageDataModule
from rethink.data.sources import load_npz
from rethink.errors import UserError
from rethink.training.module import ClassificationModule
from rethink.training.recipes import Recipe

BATCH_SIZE = 64
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


class _StepTimer(pl.Callback):
    """Wall time from the end of step ``warmup - 1`` to the end of step ``last``."""

    def __init__(self, warmup: int, last: int) -> None:
        self.warmup, self.last = warmup, last
        self.start = self.end = 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        if batch_idx == self.warmup - 1:
            self.start = time.perf_counter()
        elif batch_idx == self.last:
            self.end = time.perf_counter()


def lightning_images_per_s(arrays: ImageArrays, warmup: int, steps: int) -> float:
    """(a) The project's data module and LightningModule under a Trainer."""
    torch.manual_seed(0)
    datamodule = InMemoryImageDataModule(arrays, MEAN, STD, BATCH_SIZE, 256, augment=True, seed=0)
    recipe = Recipe(160, LR, [80, 120], 0.1, MOMENTUM, WEIGHT_DECAY, nesterov=False)
    module = ClassificationModule(default_spec("resnet56", 10), recipe)
    timer = _StepTimer(warmup, warmup + steps - 1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return steps * BATCH_SIZE / (timer.end - timer.start)


def reference_transform() -> transforms.Compose:
    """The reference code's per-image CIFAR augmentation."""
    return transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


class _PILImages(Dataset):
    """CIFAR images (N,H,W,3 uint8) served as PIL images through a transform, as torchvision's CIFAR10 does."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_images_per_s(images: np.ndarray, labels: np.ndarray, warmup: int, steps: int, workers: int) -> float:
    """(b) The reference code's torchvision pipeline and plain training loop."""
    torch.manual_seed(0)
    transform = reference_transform()
    loader = DataLoader(_PILImages(images, labels, transform), batch_size=BATCH_SIZE, shuffle=True, num_workers=workers)
    model = build(default_spec("resnet56", 10)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == warmup - 1:
            start = time.perf_counter()
        elif step == warmup + steps - 1:
            break
    return steps * BATCH_SIZE / (time.perf_counter() - start)


def data_only_images_per_s(arrays: ImageArrays, images: np.ndarray, labels: np.ndarray, batches: int, workers: int):
    """Images/s of the two data paths alone (fetch, crop, flip, normalise; no model): (a) on-device, (b) DataLoader."""
    dm = InMemoryImageDataModule(arrays, MEAN, STD, BATCH_SIZE, 256, augment=True, seed=0)
    dm.trainer = _Training()
    start = time.perf_counter()
    for i, batch in enumerate(dm.train_dataloader()):
        dm.on_after_batch_transfer(batch, 0)
        if i + 1 == batches:
            break
    ours = batches * BATCH_SIZE / (time.perf_counter() - start)
    transform = reference_transform()
    loader = DataLoader(_PILImages(images, labels, transform), batch_size=BATCH_SIZE, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i + 1 == batches:
            break
    return ours, batches * BATCH_SIZE / (time.perf_counter() - start)


class _Training:
    """The trainer attributes the data module reads, for driving it outside a Trainer."""

    training, current_epoch, global_rank, world_size = True, 0, 0, 1
    strategy = SimpleNamespace(root_device=torch.device("cpu"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--npz", default=os.environ.get("RETHINK_CIFAR10_NPZ"), help="CIFAR-10 .npz (RETHINK_CIFAR10_NPZ)")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before them (at least 1)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each path; medians are reported")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both paths (default: torch's)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of the reference path")
    p.add_argument("--data-batches", type=int, default=200, help="batches timed in the data-path-only comparison")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1 or args.workers < 0:
        p.error("--steps, --warmup and --repeats must be at least 1, --workers at least 0")
    return args


def main() -> None:
    args = parse_args()
    if not args.npz or not Path(args.npz).is_file():
        what = f"'{args.npz}' not found" if args.npz else "no data file given"
        sys.exit(f"throughput: error: {what}; pass --npz PATH or set RETHINK_CIFAR10_NPZ to the CIFAR-10 .npz.")
    wall_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
    try:
        arrays = load_npz(args.npz, num_classes=10, image_size=32)
    except UserError as exc:
        sys.exit(f"throughput: error: {exc}")
    nhwc = np.ascontiguousarray(arrays.x_train.permute(0, 2, 3, 1).numpy())
    labels = arrays.y_train.numpy()

    runs: dict[str, list[float]] = {"lightning": [], "reference": []}
    for _ in range(args.repeats):
        runs["lightning"].append(lightning_images_per_s(arrays, args.warmup, args.steps))
        runs["reference"].append(reference_images_per_s(nhwc, labels, args.warmup, args.steps, args.workers))
    a, b = statistics.median(runs["lightning"]), statistics.median(runs["reference"])
    data_ours, data_reference = data_only_images_per_s(arrays, nhwc, labels, args.data_batches, args.workers)
    wall = time.perf_counter() - wall_start

    print(
        f"ResNet-56, CIFAR-10, batch {BATCH_SIZE}, {args.steps} timed steps (+{args.warmup} warm-up), "
        f"{torch.get_num_threads()} torch threads, median of {args.repeats}"
    )
    print(f"{'path':<38} {'images/s':>9}   runs")
    for name, label, value in (
        ("lightning", "(a) rethink (Lightning, in-memory)", a),
        ("reference", f"(b) reference (torchvision, {args.workers} worker)", b),
    ):
        print(f"{label:<38} {value:9.1f}   {', '.join(f'{v:.1f}' for v in runs[name])}")
    print(f"{'ratio (a)/(b)':<38} {a / b:9.3f}")
    print(f"data path alone, {args.data_batches} batches (no model):")
    print(f"{'(a) on-device batched augmentation':<38} {data_ours:9.0f}")
    print(f"{'(b) DataLoader + torchvision':<38} {data_reference:9.0f}")
    print(f"{'ratio (a)/(b)':<38} {data_ours / data_reference:9.1f}")
    print(f"{'total wall time':<38} {wall:8.1f}s")
    if args.json:
        result: dict[str, Any] = {
            "model": "resnet56",
            "dataset": "cifar10",
            "batch_size": BATCH_SIZE,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "workers": args.workers,
            "lightning_images_per_s": round(a, 2),
            "reference_images_per_s": round(b, 2),
            "ratio": round(a / b, 4),
            "data_only_images_per_s": {"rethink": round(data_ours), "reference": round(data_reference)},
            "runs": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
            "wall_time_s": round(wall, 2),
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
