"""The graph family: any torchvision or timm model (``model=torchvision model.arch=resnet18``), its channel groups
found by Torch-Pruning's dependency graph (:mod:`rethink.arch.graph.groups`), counted by ``FlopCounterMode``.

A spec records the source, architecture, constructor kwargs, the CIFAR stem, which groups are prunable, the kept width
of every prunable group and the library versions (so the stage keys hash them). Building a spec constructs the
library's model, removes the channels beyond each group's width (Torch-Pruning), and — when anything changed —
initialises it by the library's own rule at those widths (:mod:`rethink.arch.graph.init`): a scratch model starts as
the library would start a network of the pruned widths; a pruned model's weights load into it strictly.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib.metadata import version
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from rethink.arch.family import ChannelGroup, Family, check_widths
from rethink.arch.flop_counter import torch_cost
from rethink.arch.graph.groups import GraphGroup, graph_groups, prune_channels, zero_channels
from rethink.arch.graph.init import init_rule, initialise
from rethink.arch.graph.sources import check_arch, cifar_stem, classifier, source
from rethink.arch.spec import ArchSpec

NAME = "graph"
GROUPS = ("inner", "all")
_BASE = ("source", "arch", "kwargs", "cifar_stem", "groups")  # the config entries the full-width model depends on


def _full_model(num_classes: int, config: Mapping[str, Any]) -> nn.Module:
    """The library's model at full width (its constructor's init), with the CIFAR stem when asked."""
    library = source(config["source"])
    try:
        model = library.create(config["arch"], num_classes, dict(config["kwargs"] or {}))
    except TypeError as exc:
        raise ValueError(f"{library.name} model {config['arch']!r} does not take model.kwargs: {exc}") from None
    if config["cifar_stem"]:
        cifar_stem(model)
    return model


@lru_cache(maxsize=64)
def _analysis(num_classes: int, base_json: str) -> tuple[GraphGroup, ...]:
    """The prunable groups of the full-width model (traced on the meta device), in module order."""
    config = ArchSpec.from_json(base_json).config
    with torch.device("meta"):
        model = _full_model(num_classes, config)
    groups = graph_groups(model, classifier(model))
    return tuple(g for g in groups if config["groups"] == "all" or not g.stream)


def _groups(spec: ArchSpec) -> tuple[GraphGroup, ...]:
    return _analysis(spec.num_classes, ArchSpec(NAME, 0, {k: spec.config[k] for k in _BASE}).to_json())


def make_spec(
    num_classes: int,
    arch: str,
    source_name: str,
    kwargs: Mapping[str, Any] | None = None,
    groups: str = "inner",
    cifar_stem: bool = False,
) -> ArchSpec:
    """The unpruned spec of ``source_name``'s ``arch`` (every prunable group at full width)."""
    library = source(source_name)
    check_arch(library, arch)
    if groups not in GROUPS:
        raise ValueError(f"model.groups={groups!r} is not one of {', '.join(GROUPS)}")
    if not isinstance(cifar_stem, bool):
        raise ValueError(f"model.cifar_stem must be true or false, got {cifar_stem!r}")
    config: dict[str, Any] = {
        "source": library.name,
        "arch": arch,
        "kwargs": dict(kwargs or {}),
        "cifar_stem": cifar_stem,
        "groups": groups,
    }
    base = ArchSpec(NAME, num_classes, config)
    with torch.device("meta"):
        init_rule(library.name, type(_full_model(num_classes, config)).__name__)  # refuse what it cannot start
    widths = {g.name: g.width for g in _groups(base)}
    versions = {"torch_pruning": version("torch-pruning"), library.package: library.version()}
    return base.replace_config(widths=widths, versions=versions)


def build(spec: ArchSpec) -> nn.Module:
    """A freshly initialised model of ``spec`` (seed torch first)."""
    model = _full_model(spec.num_classes, spec.config)
    widths = spec.config["widths"]
    drop = {g.name: list(range(widths[g.name], g.width)) for g in _groups(spec) if widths[g.name] < g.width}
    if drop:
        prune_channels(model, drop)
    if drop or spec.config["cifar_stem"]:
        initialise(model, spec.config["source"], spec.config["kwargs"] or {})
    return model


class GraphSurgery:
    """Channel groups, shrinking and masking of graph specs (:class:`rethink.arch.family.ChannelSurgery`)."""

    def groups(self, spec: ArchSpec) -> list[ChannelGroup]:
        widths = spec.config["widths"]
        return [
            ChannelGroup(
                g.name, widths[g.name], g.name, g.bns[0] if g.bns else None, "conv", producers=g.producers, bns=g.bns
            )
            for g in _groups(spec)
        ]

    def _drop(self, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        from rethink.arch.surgery import kept_indices

        groups = {group.name: group for group in self.groups(spec)}
        unknown = sorted(set(keep) - set(groups))
        if unknown:
            raise ValueError(
                f"unknown channel group(s) {unknown} of {spec.config['arch']}; known e.g. {list(groups)[:4]}"
            )
        drop = {}
        for name, values in keep.items():
            kept = set(kept_indices(groups[name], values))
            drop[name] = [i for i in range(groups[name].width) if i not in kept]
        return drop

    def shrink(self, model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> tuple[ArchSpec, nn.Module]:
        drop = self._drop(spec, keep)
        small = copy.deepcopy(model)
        prune_channels(small, drop)
        widths = {**spec.config["widths"], **{name: len(keep[name]) for name in drop}}
        return spec.replace_config(widths=widths), small

    def mask(self, model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> nn.Module:
        masked = copy.deepcopy(model)
        zero_channels(masked, self._drop(spec, keep))
        return masked

    def with_widths(self, spec: ArchSpec, widths: Mapping[str, int]) -> ArchSpec:
        check_widths(widths, {g.name: spec.config["widths"][g.name] for g in _groups(spec)}, spec.config["arch"])
        return spec.replace_config(widths={**spec.config["widths"], **widths})


FAMILY = Family(
    name=NAME,
    build=build,
    surgery=GraphSurgery(),
    count=torch_cost,
    channels_last=False,
)
