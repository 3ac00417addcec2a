"""Pruning by next-layer reconstruction, layer by layer (ThiNet, regression; docs/protocol.md#thinet, #regression).

For every channel group in network order, the group's reader (the layer reading its channels) is sampled on the
calibration batches at random output positions: its input patch there, per channel (``patches``: samples x channels x
taps, taps = kernel positions of a conv, or a Linear's inputs per channel), and, when asked, the *original* network's
output of that layer there (bias removed). A pruner's ``select`` then picks the kept channels and the reader's new
weight; the group is cut out (surgery) and the next group is sampled on the network pruned so far.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_slots, group_widths, shrink
from rethink.errors import UserError
from rethink.pruning.context import CalibrationShape, PruneContext
from rethink.pruning.decision import Decision


@dataclass
class Samples:
    """A reader layer sampled at ``S`` output positions: its input ``patches`` (S, C, taps), its current ``weight``
    (out, C, taps) and, for reconstruction towards the original network, ``targets`` (S, out) without bias."""

    patches: Tensor
    weight: Tensor
    targets: Tensor | None = None


# (samples, channels to keep, generator) -> (kept channel indices, the reader's new (out, C, taps) weight, notes)
Select = Callable[[Samples, int, torch.Generator], tuple[list[int], Tensor, dict[str, Any]]]


def reader_weight(reader: nn.Module, channels: int) -> Tensor:
    """The reader's weight as (out, channels, taps): a conv's kernel positions, or a Linear's inputs per channel."""
    if isinstance(reader, nn.Conv2d):
        if reader.groups != 1 or reader.dilation != (1, 1):
            raise ValueError(f"reconstruction needs plain convs (groups 1, no dilation), got {reader}")
        return reader.weight.detach().flatten(2)
    if isinstance(reader, nn.Linear):
        return reader.weight.detach().view(reader.out_features, channels, -1)
    raise ValueError(f"reconstruction reads channels through a Conv2d or Linear, not {type(reader).__name__}")


def _positions(reader: nn.Module, inputs: Tensor) -> tuple[int, int]:
    """The output rows and columns of a conv reader on ``inputs`` (1, 1 for a Linear)."""
    if isinstance(reader, nn.Linear):
        return 1, 1
    (kh, kw), (sh, sw), (ph, pw) = reader.kernel_size, reader.stride, reader.padding
    return (inputs.shape[2] + 2 * ph - kh) // sh + 1, (inputs.shape[3] + 2 * pw - kw) // sw + 1


def _patches(
    reader: nn.Module, inputs: Tensor, channels: int, count: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``count`` distinct random output positions of ``reader`` on ``inputs``: the input patches (count, C, taps) and
    the positions (image, row, column)."""
    height, width = _positions(reader, inputs)
    flat = torch.randperm(inputs.shape[0] * height * width, generator=generator)[:count]
    images, rows, cols = flat // (height * width), (flat // width) % height, flat % width
    if isinstance(reader, nn.Linear):
        return inputs[images].reshape(len(flat), channels, -1), torch.stack([images, rows, cols], 1)
    (kh, kw), (sh, sw), (ph, pw) = reader.kernel_size, reader.stride, reader.padding
    padded = F.pad(inputs, (pw, pw, ph, ph))
    r = (rows * sh)[:, None] + torch.arange(kh)
    c = (cols * sw)[:, None] + torch.arange(kw)
    index = torch.arange(channels)
    patch = padded[images[:, None, None, None], index[None, :, None, None], r[:, None, :, None], c[:, None, None, :]]
    return patch.flatten(2), torch.stack([images, rows, cols], 1)


def too_few_positions(reader: str, images: int, positions: int, per_batch: int, samples: int, batches: int) -> str:
    """The message for calibration batches that offer a conv reader fewer output positions than are sampled."""
    return (
        f"calibration: {images} images per batch x {positions} output positions of layer '{reader}' = "
        f"{images * positions}, fewer than the {per_batch} samples per batch that pruner.samples={samples} needs over "
        f"calibration.batches={batches}; lower pruner.samples, or raise calibration.batches or dataset.batch_size."
    )


def check_positions(spec: ArchSpec, target: ArchSpec, samples: int, calibration: CalibrationShape) -> None:
    """ValueError where a conv reader of a group ``target`` narrows has too few output positions per calibration
    batch for ``samples`` samples (shapes traced on the meta device: no memory, no data)."""
    widths = group_widths(target)
    readers = {
        slot.consumers[0][0]
        for slot in group_slots(spec)
        if widths.get(slot.group.name, slot.group.width) < slot.group.width and len(slot.consumers) == 1
    }
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        model = build(spec).eval()
        for name in readers:
            model.get_submodule(name).register_forward_hook(
                lambda module, inputs, out, name=name: shapes.__setitem__(name, tuple(out.shape))
            )
        model(torch.empty(1, 3, calibration.image_size, calibration.image_size))
    per_batch = math.ceil(samples / calibration.batches)
    for name, shape in sorted(shapes.items()):
        positions = math.prod(shape[2:]) if len(shape) == 4 else None  # a Linear reader: one sample per image
        if positions is not None and per_batch > calibration.batch_size * positions:
            raise ValueError(
                too_few_positions(name, calibration.batch_size, positions, per_batch, samples, calibration.batches)
            )


def sample(
    network: nn.Module,
    reader_name: str,
    channels: int,
    batches: list[tuple[Tensor, Tensor]],
    count: int,
    generator: torch.Generator,
    original: nn.Module | None = None,
) -> Samples:
    """``count`` samples of the reader ``reader_name`` of a group of ``channels`` channels over ``batches`` (spread
    evenly; a Linear reader gives one position per image, so at most as many samples as images), with the
    ``original`` network's output of that layer at the same positions when given."""
    reader = network.get_submodule(reader_name)
    per_batch = math.ceil(count / len(batches))
    captured: dict[str, Tensor] = {}
    hooks = [reader.register_forward_hook(lambda m, inputs, out: captured.__setitem__("in", inputs[0].detach()))]
    if original is not None:
        hooks.append(
            original.get_submodule(reader_name).register_forward_hook(
                lambda m, inputs, out: captured.__setitem__("out", out.detach())
            )
        )
    patches, targets = [], []
    try:
        with torch.no_grad():
            for images, _ in batches:
                network(images)
                inputs = captured["in"].cpu()
                positions = math.prod(_positions(reader, inputs))
                if isinstance(reader, nn.Conv2d) and per_batch > len(images) * positions:
                    message = too_few_positions(reader_name, len(images), positions, per_batch, count, len(batches))
                    raise UserError(message)
                chosen, where = _patches(reader, inputs, channels, per_batch, generator)
                patches.append(chosen.double())
                if original is not None:
                    original(images)
                    out = captured["out"].cpu().double()
                    at = out[where[:, 0]] if out.dim() == 2 else out[where[:, 0], :, where[:, 1], where[:, 2]]
                    bias = reader.bias.detach().cpu().double() if reader.bias is not None else 0.0
                    targets.append(at - bias)
    finally:
        for hook in hooks:
            hook.remove()
    stacked = torch.cat(patches)[:count]
    weight = reader_weight(reader, channels).cpu().double()
    return Samples(stacked, weight, torch.cat(targets)[:count] if original is not None else None)


def set_reader_weight(reader: nn.Module, weight: Tensor) -> None:
    """Write a (out, C, taps) weight back into ``reader``."""
    with torch.no_grad():
        reader.weight.copy_(weight.reshape(reader.weight.shape).to(reader.weight))


def relative_error(target: Tensor, estimate: Tensor) -> float:
    """``||target - estimate|| / ||target||`` (0 for a zero target)."""
    norm = float(target.norm())
    return float((target - estimate).norm()) / norm if norm else 0.0


def prune_layer_by_layer(
    context: PruneContext,
    target: ArchSpec,
    samples: int,
    select: Select,
    to_original: bool,
    after_layer: Callable[[nn.Module, list[tuple[Tensor, Tensor]]], None] | None = None,
) -> Decision:
    """Prune every channel group of ``context.spec`` narrower in ``target`` to its target width, in network order;
    ``to_original``: sample the original network's outputs as the reconstruction target. ``after_layer(network,
    batches)`` runs after each group (e.g. a short fine-tune on the calibration batches)."""
    batches = context.calibration()
    widths, generator = group_widths(target), torch.Generator().manual_seed(context.seed)
    network = context.model.to(context.device).eval()
    original = copy.deepcopy(network) if to_original else None
    spec, keep, notes = context.spec, {}, {}
    for slot in group_slots(context.spec):
        group = slot.group
        k = widths.get(group.name, group.width)
        if k >= group.width:
            continue
        if len(slot.consumers) != 1:
            raise ValueError(f"group '{group.name}' is read by {len(slot.consumers)} layers; reconstruction needs one")
        reader_name = slot.consumers[0][0]
        sampled = sample(network, reader_name, group.width, batches, samples, generator, original)
        kept, weight, layer_notes = select(sampled, k, generator)
        set_reader_weight(network.get_submodule(reader_name), weight)
        spec, network = shrink(network, spec, {group.name: kept})
        network.eval()
        keep[group.name], notes[group.name] = kept, layer_notes
        if after_layer is not None:
            after_layer(network, batches)
            network.eval()
    images = sum(len(labels) for _, labels in batches)
    calibration = {"calibration_batches": len(batches), "calibration_images": images, "samples": samples}
    state = {name: tensor.cpu() for name, tensor in network.state_dict().items()}
    return Decision(spec, state, keep, notes={**calibration, "layers": notes})
