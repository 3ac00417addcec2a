"""Pruning by next-layer reconstruction, layer by layer (ThiNet, regression; docs/protocol.md#thinet, #regression).

For every channel group in network order, the group's reader (the layer reading its channels) is sampled on the
calibration images (:mod:`rethink.pruning.sampling`); a pruner's ``select`` then picks the kept channels and the
reader's new weight (and bias); the group is cut out (surgery) and the next group is sampled on the network pruned so
far.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import torch
from torch import Tensor, nn

from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_slots, group_widths, shrink
from rethink.data.calibration import class_counts
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.sampling import Branch, Sampler, Samples


class Rebuilt(NamedTuple):
    """A pruner's choice for one sampled reader: the kept channels, the reader's new (out, C, taps) weight, its new
    bias (None: unchanged) and notes for decision.json."""

    kept: list[int]
    weight: Tensor
    bias: Tensor | None
    notes: dict[str, Any]


# (samples, channels to keep, generator) -> the kept channels and the rebuilt reader
Select = Callable[[Samples, int, torch.Generator], Rebuilt]
# (network pruned so far, the group just pruned, the next group to prune or None) -> None: ThiNet's fine-tune
AfterLayer = Callable[[nn.Module, str, "str | None"], None]


def set_reader(reader: nn.Module, weight: Tensor, bias: Tensor | None) -> None:
    """Write a (out, C, taps) weight (and a bias, when given) back into ``reader``."""
    with torch.no_grad():
        reader.weight.copy_(weight.reshape(reader.weight.shape).to(reader.weight))
        if bias is not None:
            reader.bias.copy_(bias.to(reader.bias))


def relative_error(target: Tensor, estimate: Tensor) -> float:
    """``||target - estimate|| / ||target||`` (0 for a zero target)."""
    norm = float(target.norm())
    return float((target - estimate).norm()) / norm if norm else 0.0


@dataclass(frozen=True)
class Sampling:
    """How each reader is sampled: ``samples`` per layer, ``per_image`` positions per image (None: spread over the
    batches), towards the ``original`` network's outputs, with the multi-branch target on the blocks of
    ``branches`` (reader name -> its block)."""

    samples: int
    per_image: int | None = None
    to_original: bool = False
    branches: Mapping[str, Branch] = field(default_factory=dict)


def prune_layer_by_layer(
    context: PruneContext, target: ArchSpec, sampling: Sampling, select: Select, after_layer: AfterLayer | None = None
) -> Decision:
    """Prune every channel group of ``context.spec`` narrower in ``target`` to its target width, in network order,
    sampled as ``sampling`` says. ``after_layer(network, group, next_group)`` runs after each group (ThiNet's
    fine-tune)."""
    batches = context.calibration()
    widths, generator = group_widths(target), torch.Generator().manual_seed(context.seed)
    network = context.model.to(context.device).eval()
    original = copy.deepcopy(network) if sampling.to_original else None
    sampler = Sampler(network, batches, sampling.samples, generator, original, sampling.per_image)
    spec, keep, notes = context.spec, {}, {}
    todo = [slot for slot in group_slots(spec) if widths.get(slot.group.name, slot.group.width) < slot.group.width]
    for index, slot in enumerate(todo):
        group = slot.group
        k = widths[group.name]
        if len(slot.consumers) != 1:
            raise ValueError(f"group '{group.name}' is read by {len(slot.consumers)} layers; reconstruction needs one")
        reader_name = slot.consumers[0][0]
        branch = sampling.branches.get(reader_name)
        rebuilt = select(sampler.sample(reader_name, group.width, branch), k, generator)
        set_reader(network.get_submodule(reader_name), rebuilt.weight, rebuilt.bias)
        spec, network = shrink(network, spec, {group.name: rebuilt.kept})
        sampler.network = network.eval()
        keep[group.name], notes[group.name] = rebuilt.kept, rebuilt.notes | {"multi_branch": branch is not None}
        if after_layer is not None:
            after_layer(network, group.name, todo[index + 1].group.name if index + 1 < len(todo) else None)
            network.eval()
    labels = [y for _, y in batches]
    calibration = {
        "calibration_batches": len(batches),
        "calibration_images": sum(len(y) for y in labels),
        "calibration_images_per_class": class_counts(labels),
        "samples": sampling.samples,
        "positions_per_image": sampling.per_image,
    }
    state = {name: tensor.cpu() for name, tensor in network.state_dict().items()}
    return Decision(spec, state, keep, notes={**calibration, "layers": notes})
