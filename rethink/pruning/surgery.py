"""Channel surgery: (model, spec, kept channels per prunable group) -> the physically smaller model.

A *channel group* is one set of channels a pruner may thin: the outputs of a conv / hidden Linear (named by that
layer's module path) or the positions of a channel-selection layer (named by the selection's path; the BN before it
and the residual / concatenated stream it reads keep their full size). One table per family maps the spec config to
its groups: which BN normalises them, which layers read them, and which config entries hold their width.
:func:`shrink` edits only those entries, rebuilds the model and copies every kept weight; :func:`mask` zeroes the
pruned channels in a copy of the large model instead, which must compute the same function (the invariance test).
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from rethink.arch.imagenet_vgg import POOL, POOLED_SIZE
from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec

Path = tuple[str | int, ...]  # keys into a spec config, e.g. ("block_widths", 3, 1)
Config = dict[str, Any]


@dataclass(frozen=True)
class ChannelGroup:
    """One prunable set of ``width`` channels.

    name: stable id = module path of the producing conv / Linear, or of the ChannelSelection (kind "selection").
    producer: that conv / Linear path (None for selection groups: their stream cannot shrink).
    bn: the BatchNorm whose scaling factors belong to these channels (for a selection group the full-size BN before
        it; kept channels are positions inside the current selection). None where the model has no BN there.
    kind: "conv", "linear" or "selection".
    """

    name: str
    width: int
    producer: str | None
    bn: str | None
    kind: str


class _Slot(NamedTuple):
    """A group plus what surgery needs: readers (module, input columns per channel) and its config entries."""

    group: ChannelGroup
    consumers: tuple[tuple[str, int], ...]
    width_path: Path  # config entry set to the kept count
    selection_path: Path | None = None  # config entry holding the selected stream indices


class _Layer(NamedTuple):
    """A layer of a feed-forward chain; ``fan`` = its input columns per channel of the previous layer."""

    name: str
    bn: str | None
    kind: str
    path: Path
    width: int
    fan: int = 1


def _chain(layers: Sequence[_Layer], head: tuple[str, int]) -> list[_Slot]:
    """Groups of a plain chain: each layer's outputs are read by the next layer (the last one by ``head``)."""
    readers = [(layer.name, layer.fan) for layer in layers[1:]] + [head]
    return [
        _Slot(ChannelGroup(layer.name, layer.width, layer.name, layer.bn, layer.kind), (reader,), layer.path)
        for layer, reader in zip(layers, readers)
    ]


def _inner(block: str, conv: int, bn: int, path: Path, width: int) -> _Slot:
    """Outputs of ``block.conv{conv}``, normalised by ``block.bn{bn}`` and read by ``block.conv{conv + 1}``."""
    name = f"{block}.conv{conv}"
    return _Slot(ChannelGroup(name, width, name, f"{block}.bn{bn}", "conv"), ((f"{block}.conv{conv + 1}", 1),), path)


def _selection(owner: str, bn: str, reader: str, width_path: Path, selection_path: Path, chosen: list[int]) -> _Slot:
    """The selection ``{owner}select`` after the full-size ``{owner}{bn}``, read by ``{owner}{reader}``."""
    group = ChannelGroup(f"{owner}select", len(chosen), None, f"{owner}{bn}", "selection")
    return _Slot(group, ((f"{owner}{reader}", 1),), width_path, selection_path)


def _blocks(blocks_per_stage: Sequence[int]) -> list[str]:
    return [f"layer{s + 1}.{b}" for s, count in enumerate(blocks_per_stage) for b in range(count)]


def _cifar_vgg(config: Config) -> list[_Slot]:
    layers, index = [], 0
    for position, width in enumerate(config["cfg"]):
        if width != "M":
            layers.append(_Layer(f"features.{index}", f"features.{index + 1}", "conv", ("cfg", position), width))
        index += 1 if width == "M" else 3  # conv, BN, ReLU
    if config["head"] == "linear":
        return _chain(layers, ("classifier", 1))
    layers.append(_Layer("classifier.0", "classifier.1", "linear", ("hidden",), config["hidden"]))
    return _chain(layers, ("classifier.3", 1))


def _cifar_resnet(config: Config) -> list[_Slot]:
    blocks = _blocks(config["blocks"])
    pairs = enumerate(zip(blocks, config["inner"]))
    return [_inner(block, 1, 1, ("inner", k), width) for k, (block, width) in pairs if width]  # 0: branch removed


def _cifar_preresnet(config: Config) -> list[_Slot]:
    selected, blocks, slots = config["selected"], _blocks(config["blocks"]), []
    for k, (block, (_, c1, c2)) in enumerate(zip(blocks, config["block_widths"])):
        if selected is not None:
            slots.append(_selection(f"{block}.", "bn1", "conv1", ("block_widths", k, 0), ("selected", k), selected[k]))
        slots += [_inner(block, 1, 2, ("block_widths", k, 1), c1), _inner(block, 2, 3, ("block_widths", k, 2), c2)]
    if selected is not None:
        slots.append(_selection("", "bn", "fc", ("final_width",), ("selected", len(blocks)), selected[-1]))
    return slots


def _cifar_densenet(config: Config) -> list[_Slot]:
    selected, necks, blocks = config["selected"], config["bottleneck_widths"], config["blocks"]
    sites: list[tuple[str, str, str, bool]] = []  # (owner prefix, BN, reader of the selection, is a dense layer)
    for i, count in enumerate(blocks):
        sites += [(f"dense{i + 1}.{j}.", "bn1", "conv1", True) for j in range(count)]
        sites.append((f"trans{i + 1}.", "bn1", "conv1", False) if i < len(blocks) - 1 else ("", "bn", "fc", False))
    slots, layer = [], 0
    for position, (owner, bn, reader, dense) in enumerate(sites):
        if selected is not None:
            path = ("selected", position)
            slots.append(_selection(owner, bn, reader, ("in_widths", position), path, selected[position]))
        if dense and necks is not None:
            slots.append(_inner(owner[:-1], 1, 2, ("bottleneck_widths", layer), necks[layer]))
        layer += dense
    return slots


def _resnet_imagenet(config: Config) -> list[_Slot]:
    return [
        _inner(f"layer{s + 1}.{b}", i + 1, i + 1, ("inner_widths", s, b, i), width)
        for s, stage in enumerate(config["inner_widths"])
        for b, inner in enumerate(stage)
        for i, width in enumerate(inner)
    ]


def _vgg_imagenet(config: Config) -> list[_Slot]:
    conv_bn, fc_bn = config["batch_norm"], config["classifier_bn"]
    layers, index = [], 0
    for position, width in enumerate(config["features"]):
        if width != POOL:
            bn = f"features.{index + 1}" if conv_bn else None
            layers.append(_Layer(f"features.{index}", bn, "conv", ("features", position), width))
        index += 1 if width == POOL else 2 + conv_bn  # conv, [BN], ReLU
    index, fan = 0, POOLED_SIZE * POOLED_SIZE  # the first Linear reads each channel's flattened 7x7 map
    for position, width in enumerate(config["classifier"]):
        bn = f"classifier.{index + 1}" if fc_bn else None
        layers.append(_Layer(f"classifier.{index}", bn, "linear", ("classifier", position), width, fan))
        index, fan = index + 2 + fc_bn + (config["dropout"] > 0), 1  # Linear, [BN1d], ReLU, [Dropout]
    return _chain(layers, (f"classifier.{index}", fan))


FAMILY_GROUPS: dict[str, Callable[[Config], list[_Slot]]] = {
    "cifar_vgg": _cifar_vgg,
    "cifar_resnet": _cifar_resnet,
    "cifar_preresnet": _cifar_preresnet,
    "cifar_densenet": _cifar_densenet,
    "resnet_imagenet": _resnet_imagenet,
    "vgg_imagenet": _vgg_imagenet,
}


def _slots(spec: ArchSpec) -> list[_Slot]:
    if spec.family not in FAMILY_GROUPS:
        raise ValueError(f"no channel groups known for family '{spec.family}'; known: {', '.join(FAMILY_GROUPS)}")
    return FAMILY_GROUPS[spec.family](spec.config)


def prunable_groups(spec: ArchSpec) -> list[ChannelGroup]:
    """The prunable channel groups of ``spec``, in network order."""
    return [slot.group for slot in _slots(spec)]


def group_widths(spec: ArchSpec) -> dict[str, int]:
    """Group name -> current number of channels."""
    return {group.name: group.width for group in prunable_groups(spec)}


def _kept(group: ChannelGroup, values: Sequence[int]) -> list[int]:
    """``values`` as a validated list of kept indices of ``group``."""
    try:
        kept = [operator.index(v) for v in values]
    except TypeError:
        raise ValueError(f"group '{group.name}': kept indices must be integers, got {values!r}") from None
    if not kept:
        raise ValueError(f"group '{group.name}' would keep zero channels; at least one channel must be kept")
    if any(b <= a for a, b in zip(kept, kept[1:])):
        raise ValueError(f"group '{group.name}': kept indices must be sorted and unique, got {kept}")
    if kept[0] < 0 or kept[-1] >= group.width:
        raise ValueError(f"group '{group.name}': kept indices must lie in [0, {group.width}), got {kept}")
    return kept


def _plan(spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> list[tuple[_Slot, list[int]]]:
    """The groups named in ``keep`` with their validated kept indices, in network order."""
    slots = {slot.group.name: slot for slot in _slots(spec)}
    unknown = sorted(set(keep) - set(slots))
    if unknown:
        raise ValueError(f"unknown channel group(s) {unknown} for {spec.family}; known e.g. {list(slots)[:4]}")
    return [(slot, _kept(slot.group, keep[name])) for name, slot in slots.items() if name in keep]


def _get(config: Config, path: Path) -> Any:
    for key in path:
        config = config[key]  # type: ignore[index]
    return config


def _put(config: Config, path: Path, value: Any) -> None:
    _get(config, path[:-1])[path[-1]] = value


def _slice(state: dict[str, Tensor], module: str, names: Sequence[str], dim: int, index: Tensor) -> None:
    """Keep ``index`` along ``dim`` of the state entries ``module.<name>`` that exist."""
    for key in (f"{module}.{name}" for name in names):
        if key in state:
            state[key] = state[key].index_select(dim, index.to(state[key].device))


def shrink(model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> tuple[ArchSpec, nn.Module]:
    """The pruned spec and the smaller model with every kept weight of ``model`` (built from ``spec``) copied.

    ``keep[name]``: sorted indices (relative to the group's current channels) to keep; groups not named keep all.
    The result has ``model``'s device, floating dtype and train/eval mode.
    """
    config, state = copy.deepcopy(spec.config), dict(model.state_dict())
    for slot, kept in _plan(spec, keep):
        group, index = slot.group, torch.tensor(kept, dtype=torch.long)
        _put(config, slot.width_path, len(kept))
        if slot.selection_path is not None:
            chosen, key = _get(spec.config, slot.selection_path), f"{group.name}.indices"
            if state[key].tolist() != chosen:
                raise ValueError(f"group '{group.name}': the model's selected channels differ from the spec's")
            _put(config, slot.selection_path, [chosen[i] for i in kept])
            state[key] = state[key].index_select(0, index.to(state[key].device))
        else:
            _slice(state, str(group.producer), ("weight", "bias"), 0, index)
            if group.bn is not None:
                _slice(state, group.bn, ("weight", "bias", "running_mean", "running_var"), 0, index)
        for reader, fan in slot.consumers:
            _slice(state, reader, ("weight",), 1, (index[:, None] * fan + torch.arange(fan)).flatten())
    pruned = ArchSpec(spec.family, spec.num_classes, config)
    small = build(pruned)
    small.load_state_dict(state, strict=True)
    reference = next(model.parameters(), None)
    if reference is not None:
        small.to(reference.device, reference.dtype)
    return pruned, small.train(model.training)


def mask(model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> nn.Module:
    """A copy of ``model`` with the pruned channels zeroed: producer rows (weight, bias) and BN weight and bias.

    For a selection group the BN entries of the dropped selected stream channels are zeroed. In eval mode the
    result computes what ``shrink(model, spec, keep)[1]`` computes.
    """
    masked, plan = copy.deepcopy(model), _plan(spec, keep)
    modules = dict(masked.named_modules())
    with torch.no_grad():
        for slot, kept in plan:
            group = slot.group
            dropped = torch.tensor(sorted(set(range(group.width)) - set(kept)), dtype=torch.long)
            if slot.selection_path is not None:
                dropped = torch.tensor(_get(spec.config, slot.selection_path), dtype=torch.long)[dropped]
            for name in (group.producer, group.bn):
                for param in () if name is None else (modules[name].weight, modules[name].bias):
                    if param is not None:
                        param.index_fill_(0, dropped.to(param.device), 0.0)
    return masked
