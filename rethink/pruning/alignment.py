"""Hardware-aligned widths, ``pruner.round_to=N`` (docs/speed.md "Aligned widths"): every kept width of a channel
pruner is rounded to the nearest multiple of ``N`` — never below ``N``, never above the layer's full width — by
keeping the next-best channels of the pruner's own criterion (or dropping its worst). ``round_to=auto`` is the
alignment of the device the cell trains on: 8 on a CUDA GPU (bf16 / fp16 tensor-core tiles want channel counts that
are multiples of 8), 16 on a CPU with AVX-512 (16 fp32 lanes per vector register, the block size of oneDNN's
convolution kernels), else 8 (AVX2: 8 fp32 lanes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

import torch

from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_widths, with_group_widths
from rethink.settings.typed import AtLeast

AUTO = "auto"
RoundTo = Annotated[int, AtLeast(1)] | Literal["auto"] | None  # the type of every channel pruner's ``round_to``


def aligned_width(width: int, full: int, round_to: int | None) -> int:
    """``width`` rounded half up to a multiple of ``round_to``, at least ``round_to``, at most ``full``."""
    if not round_to or round_to == 1:
        return width
    return min(full, max(round_to, round_to * ((width + round_to // 2) // round_to)))


def aligned_target(large: ArchSpec, target: ArchSpec, round_to: int | None) -> ArchSpec:
    """``target`` (a narrowing of ``large``'s channel groups) with every narrowed group's width aligned."""
    if not round_to or round_to == 1:
        return target
    full, widths = group_widths(large), group_widths(target)
    return with_group_widths(large, {n: aligned_width(w, full[n], round_to) for n, w in widths.items() if n in full})


def device_alignment(trainer: Mapping[str, Any]) -> tuple[int, str]:
    """``round_to=auto`` for the trainer arguments ``trainer``: (the alignment, the rule that gave it)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return 8, "CUDA GPU: bf16 / fp16 tensor cores tile channels in multiples of 8"
    capability = torch.backends.cpu.get_cpu_capability()
    if "AVX512" in capability:
        return 16, f"CPU with {capability}: 16 fp32 lanes per vector, the channel block of oneDNN's conv kernels"
    return 8, f"CPU with {capability}: 8 fp32 lanes per vector"
