"""Channel surgery, for every family that declares its channel groups (:class:`rethink.arch.family.Family`):
(model, spec, kept channels per group) -> the physically smaller model.

A *channel group* is one set of channels a pruner may thin: the outputs of a conv / hidden Linear (named by that
layer's module path) or the positions of a channel-selection layer (named by the selection's path; the BN before it
and the residual / concatenated stream it reads keep their full size). The family's declaration says which BN
normalises a group, which layers read it and which config entries hold its width. :func:`shrink` edits only those
entries, rebuilds the model and copies every kept weight; :func:`mask` zeroes the pruned channels in a copy of the
large model instead, which must compute the same function (the invariance test). :func:`remove_branches` removes
whole residual branches, for families that declare their residual blocks.
"""

from __future__ import annotations

import copy
import operator
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from rethink.arch.family import (
    Block,
    ChannelGroup,
    GroupSlot,
    ResidualBlocks,
    check_widths,
    config_get,
    config_put,
)
from rethink.arch.registry import build, family_of
from rethink.arch.spec import ArchSpec


def group_slots(spec: ArchSpec) -> list[GroupSlot]:
    """The channel groups ``spec``'s family declares, with their couplings; ValueError when it declares none."""
    family = family_of(spec)
    if family.channel_groups is None:
        raise ValueError(f"family '{spec.family}' declares no channel groups (Family.channel_groups)")
    return family.channel_groups(spec.config)


def prunable_groups(spec: ArchSpec) -> list[ChannelGroup]:
    """The prunable channel groups of ``spec``, in network order."""
    surgery = family_of(spec).surgery
    if surgery is not None:
        return surgery.groups(spec)
    return [slot.group for slot in group_slots(spec)]


def group_widths(spec: ArchSpec) -> dict[str, int]:
    """Group name -> current number of channels."""
    return {group.name: group.width for group in prunable_groups(spec)}


def kept_indices(group: ChannelGroup, values: Sequence[int]) -> list[int]:
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


def _plan(spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> list[tuple[GroupSlot, list[int]]]:
    """The groups named in ``keep`` with their validated kept indices, in network order."""
    slots = {slot.group.name: slot for slot in group_slots(spec)}
    unknown = sorted(set(keep) - set(slots))
    if unknown:
        raise ValueError(f"unknown channel group(s) {unknown} for {spec.family}; known e.g. {list(slots)[:4]}")
    return [(slot, kept_indices(slot.group, keep[name])) for name, slot in slots.items() if name in keep]


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
    surgery = family_of(spec).surgery
    if surgery is not None:
        return surgery.shrink(model, spec, keep)
    config, state = copy.deepcopy(spec.config), dict(model.state_dict())
    for slot, kept in _plan(spec, keep):
        group, index = slot.group, torch.tensor(kept, dtype=torch.long)
        if slot.width_path is not None:
            config_put(config, slot.width_path, len(kept))
        if slot.selection_path is not None:
            chosen, key = config_get(spec.config, slot.selection_path), f"{group.name}.indices"
            if state[key].tolist() != chosen:
                raise ValueError(f"group '{group.name}': the model's selected channels differ from the spec's")
            config_put(config, slot.selection_path, [chosen[i] for i in kept])
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
    """A copy of ``model`` with the pruned channels zeroed: producer rows (weight, bias), BN weight and bias, and the
    readers' input columns.

    For a selection group the BN entries of the dropped selected stream channels are zeroed (a selection reading the
    stream without a BN is masked by its reader's columns alone). In eval mode the result computes what
    ``shrink(model, spec, keep)[1]`` computes.
    """
    surgery = family_of(spec).surgery
    if surgery is not None:
        return surgery.mask(model, spec, keep)
    masked, plan = copy.deepcopy(model), _plan(spec, keep)
    modules = dict(masked.named_modules())
    with torch.no_grad():
        for slot, kept in plan:
            group = slot.group
            dropped = torch.tensor(sorted(set(range(group.width)) - set(kept)), dtype=torch.long)
            for reader, fan in slot.consumers:
                weight = modules[reader].weight
                columns = (dropped[:, None] * fan + torch.arange(fan)).flatten()
                weight.index_fill_(1, columns.to(weight.device), 0.0)
            if slot.selection_path is not None:
                dropped = torch.tensor(config_get(spec.config, slot.selection_path), dtype=torch.long)[dropped]
            for name in (group.producer, group.bn):
                for param in () if name is None else (modules[name].weight, modules[name].bias):
                    if param is not None:
                        param.index_fill_(0, dropped.to(param.device), 0.0)
    return masked


def with_group_widths(spec: ArchSpec, widths: Mapping[str, int]) -> ArchSpec:
    """``spec`` with the named groups narrowed to ``widths`` (their first channels; selections keep their first
    selected positions). Equal to ``shrink(build(spec), spec, {name: range(k)})[0]`` without building a model.
    """
    surgery = family_of(spec).surgery
    if surgery is not None:
        return surgery.with_widths(spec, widths)
    slots = {slot.group.name: slot for slot in group_slots(spec)}
    check_widths(widths, {name: slot.group.width for name, slot in slots.items()}, spec.family)
    config = copy.deepcopy(spec.config)
    for name, k in widths.items():
        slot = slots[name]
        if slot.width_path is not None:
            config_put(config, slot.width_path, k)
        if slot.selection_path is not None:
            config_put(config, slot.selection_path, config_get(spec.config, slot.selection_path)[:k])
    return ArchSpec(spec.family, spec.num_classes, config)


def residual_declaration(spec: ArchSpec, purpose: str) -> ResidualBlocks:
    """The removable residual blocks ``spec``'s family declares; ValueError naming ``purpose`` when it declares none."""
    declared = family_of(spec).residual_blocks
    if declared is None:
        raise ValueError(
            f"{purpose} needs residual blocks: family '{spec.family}' declares no removable residual blocks "
            "(Family.residual_blocks; e.g. resnet56, resnet110, preresnet164, resnet34, resnet50 do)"
        )
    return declared


def check_matches(model: nn.Module, spec: ArchSpec) -> None:
    """ValueError unless ``model`` has exactly the state_dict entries ``build(spec)`` would have."""
    with torch.device("meta"):
        expected = set(build(spec).state_dict())
    got = set(model.state_dict())
    if got != expected:
        missing, extra = sorted(expected - got)[:5], sorted(got - expected)[:5]
        raise ValueError(f"the model does not match its spec (missing {missing}, unexpected {extra})")


def remove_branches(
    model: nn.Module, spec: ArchSpec, keep: Sequence[Sequence[bool]], drop_identity: bool = True
) -> tuple[ArchSpec, nn.Module, dict[str, Block]]:
    """The spec without the residual branches ``keep`` marks False, a model of it carrying ``model``'s weights, and
    the map from each new block path to the old block it copies.

    ``keep``: one bool per block per stage (the family's ``residual_blocks.blocks``); a block without a branch must
    be False. A removed block keeps its shortcut; with ``drop_identity`` one whose shortcut is the identity leaves its
    stage, without it stays in place (module paths unchanged). The new model is on ``model``'s device and dtype, in
    its train/eval mode.
    """
    declared = residual_declaration(spec, "removing residual branches")
    blocks = declared.blocks(spec)
    if len(keep) != len(blocks) or any(len(k) != len(stage) for k, stage in zip(keep, blocks)):
        shape = [len(stage) for stage in blocks]
        raise ValueError(f"keep needs one bool per block per stage (blocks per stage {shape})")
    check_matches(model, spec)
    for stage, flags in zip(blocks, keep):
        for block, flag in zip(stage, flags):
            if flag and not block.has_branch:
                raise ValueError(f"block {block.path} has no residual branch to keep")
    config, old_of_new = declared.without(spec, keep, drop_identity)
    pruned_spec = ArchSpec(spec.family, spec.num_classes, config)
    old_state = model.state_dict()
    pruned = build(pruned_spec)
    state = {}
    for key in pruned.state_dict():
        parts = key.split(".")
        prefix = ".".join(parts[:2])
        old_key = key if prefix not in old_of_new else ".".join([old_of_new[prefix].path, *parts[2:]])
        state[key] = old_state[old_key].detach().clone()
    pruned.load_state_dict(state, strict=True)
    reference = next(model.parameters(), None)
    if reference is not None:
        pruned.to(reference.device, reference.dtype)
    return pruned_spec, pruned.train(model.training), old_of_new
