"""Timing one model on one execution path: inference latency at batch 1, inference throughput and training-step
throughput at a given batch (:func:`measure`).

A path is how the model runs: ``fp32`` (eager, contiguous NCHW, float32), ``channels_last`` (model and inputs in
NHWC memory format), ``bf16`` (``torch.autocast`` to bfloat16), ``channels_last+bf16`` (both), and optionally
``compile`` (``torch.compile`` of the fp32 model). Each measurement runs ``warmup`` untimed calls, then ``steps``
timed ones (latency: ``LATENCY_CALLS`` times as many, a batch-1 call is short), and returns the time per call.
A training step is forward + cross-entropy + backward + an SGD step (lr 0.1, momentum 0.9, weight decay 1e-4); the
weights it changes are restored afterwards, so every measurement runs the same (e.g. masked) weights.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

HIGHER_IS_BETTER = {"latency_ms": False, "inference_ips": True, "train_ips": True}
LATENCY_CALLS = 4  # batch-1 calls per timed step of the other measurements


@dataclass(frozen=True)
class ExecPath:
    """An execution path: NHWC memory format, bfloat16 autocast, ``torch.compile``."""

    name: str
    channels_last: bool = False
    bf16: bool = False
    compiled: bool = False


FP32 = ExecPath("fp32")
FAST_PATHS = (
    ExecPath("channels_last", channels_last=True),
    ExecPath("bf16", bf16=True),
    ExecPath("channels_last+bf16", channels_last=True, bf16=True),
)
COMPILE = ExecPath("compile", compiled=True)


def paths(compile_too: bool) -> tuple[ExecPath, ...]:
    """Every path measured: fp32 and the fast paths (and ``compile`` when asked for)."""
    return (FP32, *FAST_PATHS, *((COMPILE,) if compile_too else ()))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(path: ExecPath, device: torch.device) -> ContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if path.bf16 else nullcontext()


def _timed(call: Callable[[], None], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per call of ``call`` over ``steps`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        call()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def _on_path(model: nn.Module, path: ExecPath) -> nn.Module:
    """``model`` in the path's memory format (in place), compiled when the path compiles."""
    model.to(memory_format=torch.channels_last if path.channels_last else torch.contiguous_format)
    return torch.compile(model) if path.compiled else model


def _input(batch: int, size: int, path: ExecPath, device: torch.device) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, device=device)
    return x.contiguous(memory_format=torch.channels_last) if path.channels_last else x


def measure(
    model: nn.Module,
    path: ExecPath,
    input_size: int,
    num_classes: int,
    batch: int,
    warmup: int,
    steps: int,
    device: torch.device,
) -> dict[str, float]:
    """Batch-1 latency (ms), inference and training throughput at ``batch`` (images/s) of ``model`` (on
    ``device``, any mode) on ``path``; the model's weights and memory format are as before afterwards."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    runner = _on_path(model, path)
    try:
        runner.eval()
        one, many = _input(1, input_size, path, device), _input(batch, input_size, path, device)

        def infer(x: torch.Tensor) -> Callable[[], None]:
            def call() -> None:
                with torch.inference_mode(), _autocast(path, device):
                    runner(x)

            return call

        latency = _timed(infer(one), warmup, steps * LATENCY_CALLS, device)
        inference = _timed(infer(many), warmup, steps, device)
        runner.train()
        labels = torch.randint(0, num_classes, (batch,), device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

        def train_step() -> None:
            with _autocast(path, device):
                loss = F.cross_entropy(runner(many), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        train = _timed(train_step, warmup, steps, device)
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
    return {"latency_ms": 1000 * latency, "inference_ips": batch / inference, "train_ips": batch / train}
