"""Sampling a reader layer for next-layer reconstruction (ThiNet, regression; docs/protocol.md#thinet, #regression).

A channel group's reader (the layer reading its channels) is sampled on the calibration images at random output
positions: its input patch there, per channel (``patches``: samples x channels x taps, taps = kernel positions of a
conv, or a Linear's inputs per channel), and, when asked, the *original* network's output of that layer there (bias
removed). Positions are drawn either ``positions_per_image`` distinct ones from every image in turn (as ThiNet and He
et al. sample: 10 per image) or, unset, spread evenly over the calibration batches (distinct within a batch).

With ``branch`` (He et al.'s multi-branch enhancement), the reader is the last conv of a residual block followed by
the block's last BN, and the target also carries the shortcut's error: the original network's shortcut minus the
pruned one's at the same positions, mapped back through that BN's scale, so the rebuilt branch makes up for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_slots, group_widths
from rethink.errors import UserError
from rethink.pruning.context import CalibrationShape


@dataclass
class Samples:
    """A reader layer sampled at ``S`` output positions: its input ``patches`` (S, C, taps), its current ``weight``
    (out, C, taps) and ``bias`` (out,) or None, and, for reconstruction towards the original network, ``targets``
    (S, out) without the current bias."""

    patches: Tensor
    weight: Tensor
    targets: Tensor | None = None
    bias: Tensor | None = None


@dataclass(frozen=True)
class Branch:
    """The residual block whose last conv is the reader: its module path and its last BN's (relative to it)."""

    block: str
    last_bn: str


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


def _draw(reader: nn.Module, inputs: Tensor, count: int, per_image: int | None, generator: torch.Generator) -> Tensor:
    """Up to ``count`` output positions (image, row, column) of ``reader`` on ``inputs``: ``per_image`` distinct
    random ones of every image in turn (all of them where an image has fewer), or distinct ones over the batch."""
    height, width = _positions(reader, inputs)
    area = height * width
    if per_image is None:
        flat = torch.randperm(inputs.shape[0] * area, generator=generator)[:count]
    else:
        chosen = torch.rand(inputs.shape[0], area, generator=generator).argsort(1)[:, : min(per_image, area)]
        flat = (torch.arange(inputs.shape[0])[:, None] * area + chosen).flatten()[:count]
    return torch.stack([flat // area, (flat // width) % height, flat % width], 1)


def _patches(reader: nn.Module, inputs: Tensor, channels: int, where: Tensor) -> Tensor:
    """The reader's input patches (count, C, taps) at output positions ``where`` (image, row, column)."""
    images, rows, cols = where.unbind(1)
    if isinstance(reader, nn.Linear):
        return inputs[images].reshape(len(where), channels, -1)
    (kh, kw), (sh, sw), (ph, pw) = reader.kernel_size, reader.stride, reader.padding
    padded = F.pad(inputs, (pw, pw, ph, ph))
    r = (rows * sh)[:, None] + torch.arange(kh)
    c = (cols * sw)[:, None] + torch.arange(kw)
    index = torch.arange(channels)
    patch = padded[images[:, None, None, None], index[None, :, None, None], r[:, None, :, None], c[:, None, None, :]]
    return patch.flatten(2)


def _at(out: Tensor, where: Tensor) -> Tensor:
    """A layer output (N, out[, H, W]) at positions ``where``: (count, out)."""
    return out[where[:, 0]] if out.dim() == 2 else out[where[:, 0], :, where[:, 1], where[:, 2]]


def too_few_positions(reader: str, images: int, positions: int, per_batch: int, samples: int, batches: int) -> str:
    """The message for calibration batches that offer a conv reader fewer output positions than are sampled."""
    return (
        f"calibration: {images} images per batch x {positions} output positions of layer '{reader}' = "
        f"{images * positions}, fewer than the {per_batch} samples per batch that pruner.samples={samples} needs over "
        f"calibration.batches={batches}; lower pruner.samples, or raise calibration.batches or dataset.batch_size."
    )


def too_few_images(reader: str, images: int, per_image: int, samples: int) -> str:
    """The message for calibration images too few for ``samples`` at ``per_image`` positions each."""
    return (
        f"calibration: {images} images x {per_image} positions of layer '{reader}' per image = {images * per_image}, "
        f"fewer than pruner.samples={samples}; lower pruner.samples, or raise pruner.positions_per_image or the "
        "calibration images (calibration.images_per_class or calibration.batches)."
    )


def check_positions(
    spec: ArchSpec, target: ArchSpec, samples: int, calibration: CalibrationShape, per_image: int | None = None
) -> None:
    """ValueError where a conv reader of a group ``target`` narrows has too few output positions in the calibration
    data for ``samples`` samples (shapes traced on the meta device: no memory, no data)."""
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
        if len(shape) != 4:
            continue  # a Linear reader: one sample per image
        positions = math.prod(shape[2:])
        if per_image is not None and calibration.images * min(per_image, positions) < samples:
            raise ValueError(too_few_images(name, calibration.images, min(per_image, positions), samples))
        if per_image is None and per_batch > calibration.batch_size * positions:
            raise ValueError(
                too_few_positions(name, calibration.batch_size, positions, per_batch, samples, calibration.batches)
            )


def _bn_scale(block: nn.Module, branch: Branch) -> Tensor:
    """Per output channel, the scale of the block's last BN in eval mode (gamma / sqrt(var + eps))."""
    bn = block.get_submodule(branch.last_bn)
    if not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"the multi-branch target needs the block's last BN, not {type(bn).__name__}")
    return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().cpu().double()


def _shortcut(block: nn.Module, x: Tensor) -> Tensor:
    """The block's shortcut of its input ``x`` (its ``shortcut`` method, e.g. option A, or ``downsample``)."""
    if callable(getattr(block, "shortcut", None)):
        return block.shortcut(x)
    downsample = getattr(block, "downsample", None)
    return x if downsample is None else downsample(x)


@dataclass
class Sampler:
    """Draws :class:`Samples` of reader layers of ``network`` over the calibration ``batches``: ``count`` samples,
    ``per_image`` positions per image (None: spread over the batches), targets from ``original`` when given."""

    network: nn.Module
    batches: list[tuple[Tensor, Tensor]]
    count: int
    generator: torch.Generator
    original: nn.Module | None = None
    per_image: int | None = None

    def sample(self, reader_name: str, channels: int, branch: Branch | None = None) -> Samples:
        """The reader ``reader_name`` of a group of ``channels`` channels sampled; a Linear reader gives one position
        per image, so at most as many samples as images. ``branch``: add the shortcut's error to the targets."""
        network, original = self.network, self.original
        reader = network.get_submodule(reader_name)
        captured: dict[str, Tensor] = {}

        def keep(key: str, module: nn.Module, *, output: bool = True, first: bool = False) -> Any:
            def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor | None = None) -> None:
                captured[key] = (out if output else inputs[0]).detach()

            return module.register_forward_pre_hook(hook) if first else module.register_forward_hook(hook)

        hooks = [keep("in", reader, output=False)]
        if original is not None:
            hooks.append(keep("out", original.get_submodule(reader_name)))
        if branch is not None:
            if original is None:
                raise ValueError("the multi-branch target needs the original network's outputs")
            blocks = network.get_submodule(branch.block), original.get_submodule(branch.block)
            hooks += [keep("conv", reader), keep("bn_in", blocks[0].get_submodule(branch.last_bn), output=False)]
            hooks += [keep("x", blocks[0], output=False, first=True), keep("x0", blocks[1], output=False, first=True)]
        patches, targets, taken, images_seen = [], [], 0, 0
        try:
            with torch.no_grad():
                for images, _ in self.batches:
                    if self.per_image is not None and taken >= self.count:
                        break
                    network(images)
                    inputs = captured["in"].cpu()
                    images_seen += len(images)
                    wanted = self._wanted(reader, reader_name, inputs, taken)
                    where = _draw(reader, inputs, wanted, self.per_image, self.generator)
                    patches.append(_patches(reader, inputs, channels, where).double())
                    taken += len(where)
                    if original is not None:
                        original(images)
                        bias = reader.bias.detach().cpu().double() if reader.bias is not None else 0.0
                        target = _at(captured["out"].cpu().double(), where) - bias
                        if branch is not None:
                            target += self._shortcut_error(blocks, branch, captured, where)
                        targets.append(target)
        finally:
            for hook in hooks:
                hook.remove()
        if self.per_image is not None and isinstance(reader, nn.Conv2d) and taken < self.count:
            raise UserError(too_few_images(reader_name, images_seen, self.per_image, self.count))
        weight = reader_weight(reader, channels).cpu().double()
        bias = reader.bias.detach().cpu().double() if reader.bias is not None else None
        sampled = torch.cat(patches)[: self.count]
        return Samples(sampled, weight, torch.cat(targets)[: self.count] if original is not None else None, bias)

    def _wanted(self, reader: nn.Module, reader_name: str, inputs: Tensor, taken: int) -> int:
        """How many samples to draw from this batch (UserError where a spread batch has too few positions; spread,
        every batch is drawn from, the total cut to ``count`` at the end)."""
        if self.per_image is not None:
            return self.count - taken
        per_batch = math.ceil(self.count / len(self.batches))
        positions = math.prod(_positions(reader, inputs))
        if isinstance(reader, nn.Conv2d) and per_batch > len(inputs) * positions:
            message = too_few_positions(reader_name, len(inputs), positions, per_batch, self.count, len(self.batches))
            raise UserError(message)
        return per_batch

    @staticmethod
    def _shortcut_error(
        blocks: tuple[nn.Module, nn.Module], branch: Branch, captured: dict[str, Tensor], where: Tensor
    ) -> Tensor:
        """(original shortcut - pruned shortcut) at ``where``, in the reader's output units (through the last BN)."""
        if captured["bn_in"].data_ptr() != captured["conv"].data_ptr():
            raise ValueError(
                f"the multi-branch target needs block '{branch.block}' to feed its last conv straight into "
                f"'{branch.last_bn}' (a post-activation block)"
            )
        pruned, original = blocks
        error = _at((_shortcut(original, captured["x0"]) - _shortcut(pruned, captured["x"])).cpu().double(), where)
        scale = _bn_scale(pruned, branch)
        return torch.where(scale != 0, error / scale.where(scale != 0, torch.ones_like(scale)), 0.0)
