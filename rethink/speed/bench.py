"""Interleaved timing of large and pruned models (:func:`run`) and the JSON document of the results
(:func:`document`), the format :mod:`rethink.results.speed` reads.

Each repeat goes round-robin over all models (a large model, then its pruned ones) and, per model, over every path,
so that a slower or faster spell of a shared machine touches all of them alike; the medians over the repeats are
reported. A pruned model's speedup is median(large) / median(pruned) per measurement for latency and
median(pruned) / median(large) for throughput, on ``fp32`` and on the ``fastest`` path (each model's own fastest
path per measurement).
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from rethink.results.speed import FORMAT, MEASUREMENTS
from rethink.speed.catalogue import Candidate
from rethink.speed.timing import HIGHER_IS_BETTER, LATENCY_CALLS, ExecPath, measure


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    described = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        described["gpu_name"] = torch.cuda.get_device_name(device)
    described["name"] = (
        described.get("gpu_name") or described["cpu_model"] or described["processor"] or platform.machine()
    )
    return described


def batch_of(model: Candidate, max_batch: int | None) -> int:
    return model.batch_size if max_batch is None else min(model.batch_size, max_batch)


def run(
    models: list[Candidate],
    paths: tuple[ExecPath, ...],
    device: torch.device,
    repeats: int,
    warmup: int,
    steps: int,
    max_batch: int | None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """model name -> path -> measurement -> the value of each repeat; each repeat starts one model further on, so
    no model is always the first measured after the others (a position this machine measures slower)."""
    built = {m.name: m.build().to(device) for m in models}
    runs: dict[str, dict[str, dict[str, list[float]]]] = {
        m.name: {p.name: {k: [] for k in MEASUREMENTS} for p in paths} for m in models
    }
    for repeat in range(1, repeats + 1):
        start = (repeat - 1) % len(models)
        for model in models[start:] + models[:start]:
            for path in paths:
                values = measure(
                    built[model.name], path, model.input_size, model.num_classes, batch_of(model, max_batch),
                    warmup, steps, device,
                )  # fmt: skip
                for key, value in values.items():
                    runs[model.name][path.name][key].append(value)
                shown = ", ".join(f"{k} {v:.3g}" for k, v in values.items())
                progress(f"repeat {repeat}/{repeats} {model.name} [{path.name}]: {shown}")
    return runs


def _fastest(medians: dict[str, dict[str, float]]) -> dict[str, str]:
    """Per measurement, the path with the best median."""
    best = {}
    for key in MEASUREMENTS:
        pick = max if HIGHER_IS_BETTER[key] else min
        best[key] = pick(medians, key=lambda path: medians[path][key])
    return best


def _speedup(large: float, pruned: float, key: str) -> float:
    return pruned / large if HIGHER_IS_BETTER[key] else large / pruned


def document(
    models: list[Candidate],
    runs: dict[str, dict[str, dict[str, list[float]]]],
    skipped: list[dict[str, str]],
    device: torch.device,
    settings: dict[str, Any],
    max_batch: int | None,
) -> dict[str, Any]:
    """The benchmark as one JSON document (:data:`rethink.results.speed.FORMAT`)."""
    entries: dict[str, dict[str, Any]] = {}
    for model in models:
        medians = {path: {k: statistics.median(v) for k, v in by.items()} for path, by in runs[model.name].items()}
        fastest = _fastest(medians)
        entry: dict[str, Any] = {
            "name": model.name,
            "role": model.role,
            "group": model.group,
            **model.identity(),
            "large": model.large or None,
            "params": model.params,
            "flops": model.flops,
            "batch": batch_of(model, max_batch),
            "dataset_batch": model.batch_size,
            "paths": {
                path: {k: {"median": medians[path][k], "runs": v} for k, v in by.items()}
                for path, by in runs[model.name].items()
            },
            "fastest": {k: {"path": p, "median": medians[p][k]} for k, p in fastest.items()},
            "notes": model.notes,
        }
        large = entries.get(model.large)
        if large is not None:
            entry["params_ratio"] = large["params"] / model.params
            entry["flops_ratio"] = large["flops"] / model.flops
            entry["speedup"] = {
                "fp32": {k: _speedup(large["paths"]["fp32"][k]["median"], medians["fp32"][k], k) for k in MEASUREMENTS},
                "fastest": {
                    k: _speedup(large["fastest"][k]["median"], entry["fastest"][k]["median"], k) for k in MEASUREMENTS
                },
            }
        entries[model.name] = entry
    return {
        "format": FORMAT,
        "machine": machine(device),
        "settings": {**settings, "latency_calls_per_step": LATENCY_CALLS},
        "models": list(entries.values()),
        "skipped": skipped,
    }
