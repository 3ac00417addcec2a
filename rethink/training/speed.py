"""How fast a stage trains (``speed.*``): the model and its batches in channels_last memory format, and
``torch.compile`` of the model.

Neither changes what a stage computes beyond float rounding (``tests/test_speed.py`` states the tolerances), so
neither enters a stage key: a stage trained one way is reused by a cell asking for the other. bf16 autocast does
change results; it is Lightning's ``trainer.precision=bf16-mixed``, which the keys hash with the other trainer
arguments. Stored weights are always written contiguous (``rethink.io.save_tensors_atomic``) and under the model's
own names: ``nn.Module.compile`` compiles in place, so no ``_orig_mod.`` prefix reaches a state dict.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from rethink.arch import ArchSpec
from rethink.arch.registry import family_of
from rethink.settings.schema import AUTO, SpeedSettings


def uses_channels_last(speed: SpeedSettings, spec: ArchSpec) -> bool:
    """Whether ``spec``'s model trains in channels_last memory format under ``speed``."""
    if speed.channels_last == AUTO:
        return family_of(spec).channels_last
    return bool(speed.channels_last)


def to_memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    """``model`` with its 4-d parameters and buffers in channels_last (or contiguous) layout, in place."""
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def as_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch of images in the layout its model expects."""
    if channels_last and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def speed_record(speed: SpeedSettings, spec: ArchSpec, trainer: Mapping[str, Any]) -> dict[str, Any]:
    """What result.json records of the path the final model trained on: the settings as requested and what they
    resolved to for its family, and the trainer's precision (``32-true``, ``bf16-mixed``, ...)."""
    return {
        "channels_last": uses_channels_last(speed, spec),
        "channels_last_requested": speed.channels_last,
        "compile": speed.compile,
        "precision": str(trainer.get("precision", "32-true")),
    }
