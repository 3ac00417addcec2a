"""Training throughput on CIFAR-10: this project's training paths vs. the reference code's plain loop, in one run.

Every path trains the same model (``rethink.arch.build(default_spec(--model, 10))``, ResNet-56 by default) with the
same SGD (lr 0.1, momentum 0.9, weight decay 1e-4) at batch 64 on ``--device``, from the same real CIFAR-10 .npz:

- ``reference``: the reference code's loop — a PIL-image Dataset with torchvision's RandomCrop(32, 4) /
  RandomHorizontalFlip / ToTensor / Normalize, a shuffling ``DataLoader`` with ``--workers`` worker processes (1, as in
  the reference code), eager fp32, and a plain forward / backward / step loop;
- ``eager_fp32``: this project's path (``InMemoryImageDataModule``: uint8 images in one tensor, batched crop / flip /
  normalise on the device; ``ClassificationModule`` under a ``pytorch_lightning.Trainer`` without logger,
  checkpointing, progress bar or validation) with every speed setting off;
- ``default``: the same with the defaults (``speed.channels_last=auto``: the model family's choice);
- ``channels_last``: channels_last forced on (left out where it is the default);
- ``bf16``: the default plus ``trainer.precision=bf16-mixed`` (bf16 autocast; changes results, so never a default);
- ``compile`` (with ``--compile``): the default plus ``speed.compile=true``; its compilation happens in the warm-up
  steps, whose time is reported on its own.

Each path runs ``--warmup`` untimed steps, then ``--steps`` timed ones; the clock covers whole iterations (fetching and
augmenting the batch, forward, backward, optimizer step, per-step bookkeeping) from the end of the last warm-up step to
the end of the last step. The paths alternate ``--repeats`` times and the medians are reported, each as a ratio to
the reference loop and to ``eager_fp32`` (above 1: faster).

Run: ``make benchmark`` (``python benchmarks/throughput.py`` with RETHINK_CIFAR10_NPZ set), or
``python benchmarks/throughput.py --npz PATH [--model resnet56] [--device cpu|cuda] [--steps 30] [--warmup 5]
[--repeats 2] [--threads N] [--workers 1] [--compile] [--json out.json]``.
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
from dataclasses import asdict, dataclass
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

from rethink.arch import UnknownModelError, build, default_spec, model_info
from rethink.data.in_memory import ImageArrays, InMemoryImageDataModule
from rethink.data.sources import load_npz
from rethink.errors import UserError
from rethink.settings.schema import SpeedSettings
from rethink.speed.bench import machine
from rethink.training.module import ClassificationModule
from rethink.training.recipes import Recipe
from rethink.training.speed import uses_channels_last

BATCH_SIZE = 64
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


@dataclass(frozen=True)
class TrainingPath:
    """One of this project's training paths: its speed settings and Lightning precision."""

    speed: SpeedSettings
    precision: str = "32-true"


def project_paths(model: str, with_compile: bool) -> dict[str, TrainingPath]:
    """The project's paths to measure for ``model`` (``channels_last`` only where it is not already the default)."""
    paths = {"eager_fp32": TrainingPath(SpeedSettings(channels_last=False)), "default": TrainingPath(SpeedSettings())}
    if not uses_channels_last(SpeedSettings(), default_spec(model, 10)):
        paths["channels_last"] = TrainingPath(SpeedSettings(channels_last=True))
    paths["bf16"] = TrainingPath(SpeedSettings(), "bf16-mixed")
    if with_compile:
        paths["compile"] = TrainingPath(SpeedSettings(compile=True))
    return paths


class _StepTimer(pl.Callback):
    """Wall times from the start to the end of step ``warmup - 1`` (warm-up), and from there to the end of ``last``."""

    def __init__(self, warmup: int, last: int) -> None:
        self.warmup, self.last = warmup, last
        self.begin = self.start = self.end = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.begin = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        if batch_idx == self.warmup - 1:
            self.start = time.perf_counter()
        elif batch_idx == self.last:
            self.end = time.perf_counter()


def lightning_images_per_s(
    arrays: ImageArrays, model: str, path: TrainingPath, device: str, warmup: int, steps: int, devices: int = 1
) -> tuple[float, float]:
    """One of the project's paths: its images/s over all ``devices`` (DDP processes sharing the global batch), and
    the wall time of its warm-up steps (compilation included)."""
    torch.manual_seed(0)
    datamodule = InMemoryImageDataModule(arrays, MEAN, STD, BATCH_SIZE, 256, augment=True, seed=0)
    recipe = Recipe(160, LR, [80, 120], 0.1, MOMENTUM, WEIGHT_DECAY, nesterov=False)
    module = ClassificationModule(default_spec(model, 10), recipe, speed=path.speed)
    timer = _StepTimer(warmup, warmup + steps - 1)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        precision=path.precision,
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
    return steps * BATCH_SIZE / (timer.end - timer.start), timer.start - timer.begin


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


def reference_images_per_s(
    images: np.ndarray, labels: np.ndarray, model_name: str, device: str, warmup: int, steps: int, workers: int
) -> float:
    """The reference code's torchvision pipeline and plain training loop (eager fp32)."""
    torch.manual_seed(0)
    transform = reference_transform()
    loader = DataLoader(
        _PILImages(images, labels, transform),
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=workers,
        pin_memory=device == "cuda",
    )
    model = build(default_spec(model_name, 10)).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
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
    p.add_argument("--model", default="resnet56", help="a CIFAR model (model=<name>), e.g. vgg16, densenet40")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where every path trains")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before them (at least 1)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each path; medians are reported")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every path (default: torch's)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of the reference path")
    p.add_argument("--compile", action="store_true", help="also measure speed.compile=true (a long warm-up on a CPU)")
    p.add_argument("--paths", default=None, help="only these paths, comma-separated (e.g. reference,default)")
    p.add_argument(
        "--devices", type=int, default=1, help="DDP processes of the project's paths (global batch 64 shared)"
    )
    p.add_argument("--data-batches", type=int, default=200, help="batches timed in the data-path-only comparison")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1 or args.workers < 0:
        p.error("--steps, --warmup and --repeats must be at least 1, --workers at least 0")
    if args.devices < 1 or 64 % args.devices:
        p.error(f"--devices {args.devices}: the global batch of 64 must split evenly over the processes")
    if args.devices > 1 and (args.repeats != 1 or args.paths is None or "," in args.paths or args.paths == "reference"):
        p.error(
            "--devices N > 1 measures one project path once (Lightning starts its processes per run): give "
            "--paths <path> --repeats 1, e.g. --paths default --repeats 1"
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    try:
        model_info(args.model)
    except UnknownModelError as exc:
        p.error(f"--model: {exc}")
    if model_info(args.model).domain != "cifar":
        p.error(
            f"--model {args.model}: an ImageNet model; this benchmark trains on CIFAR-10 (pruned_speed.py times it)"
        )
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
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
    try:
        arrays = load_npz(args.npz, num_classes=10, image_size=32)
    except UserError as exc:
        sys.exit(f"throughput: error: {exc}")
    nhwc = np.ascontiguousarray(arrays.x_train.permute(0, 2, 3, 1).numpy())
    labels = arrays.y_train.numpy()

    paths = project_paths(args.model, args.compile)
    chosen = ["reference", *paths] if args.paths is None else args.paths.split(",")
    unknown = sorted(set(chosen) - {"reference", *paths})
    if unknown:
        sys.exit(f"throughput: error: --paths {unknown[0]}: not a path; these are: reference, {', '.join(paths)}")
    paths = {name: path for name, path in paths.items() if name in chosen}
    runs: dict[str, list[float]] = {name: [] for name in chosen}
    warmups: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, path in paths.items():
            speed, warmup_s = lightning_images_per_s(
                arrays, args.model, path, args.device, args.warmup, args.steps, args.devices
            )
            runs[name].append(speed)
            warmups[name].append(warmup_s)
        if "reference" in runs:
            runs["reference"].append(
                reference_images_per_s(nhwc, labels, args.model, args.device, args.warmup, args.steps, args.workers)
            )
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:  # a DDP process Lightning started: rank 0 reports
        return
    medians = {name: statistics.median(values) for name, values in runs.items()}
    base = {name: medians[name] for name in ("reference", "eager_fp32") if name in medians}
    data_ours, data_reference = data_only_images_per_s(arrays, nhwc, labels, args.data_batches, args.workers)
    wall = time.perf_counter() - wall_start

    print(
        f"{args.model}, CIFAR-10, batch {BATCH_SIZE}, {args.device} x{args.devices}, {args.steps} timed steps "
        f"(+{args.warmup} warm-up), {torch.get_num_threads()} torch threads, median of {args.repeats}"
    )
    print(f"{'path':<16} {'images/s':>9} " + " ".join(f"{'vs ' + b:>13}" for b in base) + "  warm-up s   runs")
    for name, value in medians.items():
        warm = f"{statistics.median(warmups[name]):9.1f}" if name in warmups else " " * 9
        ratios = " ".join(f"{value / b:13.3f}" for b in base.values())
        print(f"{name:<16} {value:9.1f} {ratios}  {warm}   {', '.join(f'{v:.1f}' for v in runs[name])}")
    print(f"data path alone, {args.data_batches} batches (no model):")
    print(f"{'on-device batched augmentation':<38} {data_ours:9.0f}")
    print(f"{'DataLoader + torchvision':<38} {data_reference:9.0f}")
    print(f"{'ratio':<38} {data_ours / data_reference:9.1f}")
    print(f"{'total wall time':<38} {wall:8.1f}s")
    if args.json:
        result: dict[str, Any] = {
            "model": args.model,
            "dataset": "cifar10",
            "device": args.device,
            "devices": args.devices,
            "device_name": machine(torch.device(args.device))["name"],
            "batch_size": BATCH_SIZE,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "workers": args.workers,
            "paths": {name: {"speed": asdict(path.speed), "precision": path.precision} for name, path in paths.items()},
            "images_per_s": {name: round(value, 2) for name, value in medians.items()},
            **{
                f"vs_{b}": {name: round(value / base_value, 4) for name, value in medians.items()}
                for b, base_value in base.items()
            },
            "warmup_s": {name: round(statistics.median(values), 2) for name, values in warmups.items()},
            "warmup_runs_s": {name: [round(v, 2) for v in values] for name, values in warmups.items()},
            "data_only_images_per_s": {"rethink": round(data_ours), "reference": round(data_reference)},
            "runs": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
            "wall_time_s": round(wall, 2),
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
