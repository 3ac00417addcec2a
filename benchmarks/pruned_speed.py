"""Measured speed of the paper's pruned models against their large models: does a FLOPs ratio become a speedup?

For each large model and each pruned model of the paper's tables whose architecture is known before training
(:mod:`rethink.speed.catalogue`: L1-norm A/B on CIFAR-10 and ImageNet, SSS, ThiNet, regression pruning, and
magnitude masks at 30/50/80 % on CIFAR-10 VGG-16 / ResNet-56), built through the project's config, plan and
architecture code, this measures (:mod:`rethink.speed.timing`):

- inference latency at batch 1 (eval mode, ``torch.inference_mode``), ms;
- inference throughput at the data set's training batch (64 CIFAR, 256 ImageNet; ``--max-batch`` caps it), images/s;
- training-step throughput (forward + cross-entropy + backward + SGD step) at that batch, images/s;

on ``fp32`` (eager, NCHW) and on ``channels_last``, ``bf16`` autocast and both (``--compile`` adds torch.compile,
~60 s of warm-up per model on a CPU); ``fastest`` is each model's fastest of them per measurement. Repeats go
round-robin over all models, each starting one model further on; medians are reported, with each pruned model's
speedup beside its FLOPs ratio and params ratio (:mod:`rethink.speed.bench`). Models whose architecture only
training decides are listed as skipped; ``--result DIR`` measures those of finished runs under DIR
(:mod:`rethink.speed.trained`).

Run: ``python benchmarks/pruned_speed.py [--models l1_cifar10 resnet56 ...] [--device cpu|cuda] [--repeats 3]
[--warmup 2] [--steps 5] [--threads N] [--max-batch N] [--compile] [--result DIR...] [--json out.json]
[--markdown out.md]``;
``--quick``: ResNet-56 and ResNet-56-B at 1/4 width, 1 repeat, tiny batches (seconds). ``python -m rethink.report
PATH... --speed out.json`` adds the measured speedup to the report's tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import torch

from rethink.errors import UserError
from rethink.results.speed import SpeedFile, to_markdown
from rethink.speed.bench import document, run
from rethink.speed.catalogue import PAPER_CELLS, QUICK_CELLS, catalogue, select
from rethink.speed.timing import paths
from rethink.speed.trained import trained_models

QUICK = {"repeats": 1, "warmup": 1, "steps": 1, "max_batch": 8}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=[], help="keep pruned models whose name/experiment/table has it")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds over all models (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement")
    parser.add_argument("--steps", type=int, default=5, help="timed calls per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-batch", type=int, default=None, help="cap on the training batch (e.g. 16 for ImageNet)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow warm-up)")
    parser.add_argument("--quick", action="store_true", help="two small models, 1 repeat, tiny batches")
    parser.add_argument("--result", nargs="*", default=[], help="finished runs: also their trained pruned models")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results as a Markdown table")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, min(value, getattr(args, key) or value))
    for key in ("repeats", "steps", "threads", "max_batch"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise UserError(f"--{key.replace('_', '-')}={value}: must be at least 1.")
    if args.warmup < 0:
        raise UserError(f"--warmup={args.warmup}: must be 0 or more.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; run on the CPU (--device cpu).")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = _arguments(argv)
        if args.threads:
            torch.set_num_threads(args.threads)
        models, skipped = catalogue(QUICK_CELLS if args.quick else PAPER_CELLS)
        if args.result:
            trained, problems = trained_models(args.result, models)
            models += trained
            skipped += [{"name": "--result", "reason": problem} for problem in problems]
        models = select(models, args.models)
    except UserError as exc:
        print(f"pruned_speed: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*TF32.*")
    device = torch.device(args.device)
    measured = paths(args.compile)
    for entry in skipped:
        print(f"skipped: {entry['name']}: {entry['reason']}", file=sys.stderr)
    print(f"timing {len(models)} models on {len(measured)} paths, {args.repeats} repeat(s)", file=sys.stderr)
    runs = run(
        models, measured, device, args.repeats, args.warmup, args.steps, args.max_batch,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    settings = {
        "repeats": args.repeats,
        "warmup": args.warmup,
        "steps": args.steps,
        "max_batch": args.max_batch,
        "compile": args.compile,
        "quick": args.quick,
        "paths": [p.name for p in measured],
        "device": args.device,
    }
    result = document(models, runs, skipped, device, settings, args.max_batch)
    markdown = to_markdown(SpeedFile(str(args.json or "-"), result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
