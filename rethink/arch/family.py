"""What an architecture family declares about its own structure, so that surgery, pruning targets, pruners and the
cost counter need no table of families: each family module builds one :class:`Family` and registers it.

A family may declare:

- ``channel_groups``: the prunable sets of channels (:class:`GroupSlot`): which layer produces them, which BN
  normalises them, which layers read them (residual / concatenated streams are coupled by simply not being a group:
  only channels whose readers are all listed can be thinned), and where their width sits in the spec's config.
  Surgery (:mod:`rethink.arch.surgery`), L1-norm, random, slimming and uniform pruning need it.
- ``filter_numbering``: the conv ids and stages of the reference L1-norm code (:class:`NumberedConv`), for the paper's
  predefined per-stage / per-layer targets.
- ``residual_blocks``: the removable residual branches (:class:`ResidualBlocks`), for Sparse Structure Selection and
  network slimming's ``on_empty=remove_block``.
- ``layer_costs``: FLOP rules for layer types of its own (the counter refuses a layer type it has no rule for).
- ``channels_last``: whether its models train faster in channels_last memory format (``speed.channels_last=auto``).
- ``surgery``: its own channel surgery (:class:`ChannelSurgery`) instead of declared ``channel_groups``: a family
  whose couplings a tracer finds (the graph family, :mod:`rethink.arch.graph`) groups, shrinks and masks channels
  itself; it offers ``channel_groups`` to pruners but not ``group_readers``.
- ``count``: its cost counter instead of the paper's (e.g. ``FlopCounterMode``; the result records the convention).

A pruner names what it needs; a model whose family lacks it is refused when the cell's plan is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Protocol, Sequence

from torch import nn

from rethink.arch.spec import ArchSpec

if TYPE_CHECKING:
    from rethink.arch.cost import Cost

Config = dict[str, Any]
ConfigPath = tuple[str | int, ...]  # keys into a spec config, e.g. ("block_widths", 3, 1)
CostRule = Callable[[nn.Module, Any, Any], tuple[int, int]]  # (module, input, output) -> (MACs, FLOPs) per image

# what each declaration gives a pruner, for the message refusing a model whose family lacks it
DECLARATIONS = {
    "channel_groups": "its prunable channel groups (which layer produces and normalises each set of channels)",
    "group_readers": "the single layer reading each channel group (for layer-wise reconstruction)",
    "filter_numbering": "the conv numbering and stages of the reference L1-norm code (for stage / layer ratios)",
    "residual_blocks": "its removable residual blocks",
}


@dataclass(frozen=True)
class ChannelGroup:
    """One prunable set of ``width`` channels.

    name: stable id = module path of the producing conv / Linear, or of the ChannelSelection (kind "selection").
    producer: that conv / Linear path (None for selection groups: their stream cannot shrink).
    bn: the BatchNorm whose scaling factors belong to these channels (for a selection group the full-size BN before
        it; kept channels are positions inside the current selection). None where the model has no BN there.
    kind: "conv", "linear" or "selection".
    producers / bns: for a coupled group (a residual stream), every layer producing / BN normalising these channels
        one to one; empty: just ``producer`` / ``bn``.
    """

    name: str
    width: int
    producer: str | None
    bn: str | None
    kind: str
    producers: tuple[str, ...] = ()
    bns: tuple[str, ...] = ()

    def filter_layers(self) -> tuple[str, ...]:
        """The convs / Linears whose output channels are this group's (a filter criterion sums over them)."""
        return self.producers or (() if self.producer is None else (self.producer,))

    def scale_bns(self) -> tuple[str, ...]:
        """The BNs whose scaling factors belong to this group (slimming averages their ``|gamma|``)."""
        return self.bns or (() if self.bn is None else (self.bn,))


class GroupSlot(NamedTuple):
    """A group plus what surgery needs: its readers (module, input columns per channel) and its config entries."""

    group: ChannelGroup
    consumers: tuple[tuple[str, int], ...]
    width_path: ConfigPath | None  # config entry set to the kept count (None: the selection's length is the width)
    selection_path: ConfigPath | None = None  # config entry holding the selected stream indices


class Layer(NamedTuple):
    """A layer of a feed-forward chain; ``fan`` = its input columns per channel of the previous layer."""

    name: str
    bn: str | None
    kind: str
    path: ConfigPath
    width: int
    fan: int = 1


def chain(layers: Sequence[Layer], head: tuple[str, int]) -> list[GroupSlot]:
    """Groups of a plain chain: each layer's outputs are read by the next layer (the last one by ``head``)."""
    readers = [(layer.name, layer.fan) for layer in layers[1:]] + [head]
    return [
        GroupSlot(ChannelGroup(layer.name, layer.width, layer.name, layer.bn, layer.kind), (reader,), layer.path)
        for layer, reader in zip(layers, readers)
    ]


def inner_group(block: str, conv: int, bn: int, path: ConfigPath, width: int) -> GroupSlot:
    """Outputs of ``block.conv{conv}``, normalised by ``block.bn{bn}`` and read by ``block.conv{conv + 1}``."""
    name = f"{block}.conv{conv}"
    return GroupSlot(
        ChannelGroup(name, width, name, f"{block}.bn{bn}", "conv"), ((f"{block}.conv{conv + 1}", 1),), path
    )


def selection_group(
    owner: str,
    bn: str | None,
    reader: str,
    width_path: ConfigPath | None,
    selection_path: ConfigPath,
    chosen: list[int],
) -> GroupSlot:
    """The selection ``{owner}select`` after the full-size ``{owner}{bn}`` (None: reading the stream directly), read
    by ``{owner}{reader}``."""
    group = ChannelGroup(f"{owner}select", len(chosen), None, None if bn is None else f"{owner}{bn}", "selection")
    return GroupSlot(group, ((f"{owner}{reader}", 1),), width_path, selection_path)


def stage_blocks(blocks_per_stage: Sequence[int]) -> list[str]:
    """Module paths ``layer{s}.{b}`` of every block, stages numbered from 1."""
    return [f"layer{s + 1}.{b}" for s, count in enumerate(blocks_per_stage) for b in range(count)]


@dataclass(frozen=True)
class NumberedConv:
    """A conv L1-norm pruning may thin, numbered as in the reference prune scripts."""

    conv_id: int
    stage: int  # 0-based
    group: str  # its channel group (the conv's module path)


@dataclass(frozen=True)
class Block:
    """One residual block: where it is, whether it has a branch and whether its shortcut downsamples."""

    stage: int  # 0-based stage index (module ``layer{stage + 1}``)
    index: int  # 0-based index in its stage
    has_branch: bool
    downsamples: bool  # shortcut is not the identity (option-A pad/pool or a projection)
    last_bn: str  # the branch's last BN, relative to the block ("bn2" basic, "bn3" bottleneck)
    last_layer: str | None = None  # the branch's last layer (an SSS factor folds into it), None: last_bn

    @property
    def path(self) -> str:
        return f"layer{self.stage + 1}.{self.index}"


@dataclass(frozen=True)
class ResidualBlocks:
    """Removable residual branches. ``blocks(spec)``: per stage, per block. ``without(spec, keep, drop_identity)``:
    the config with the branches ``keep`` marks False removed, and a map from each new block path to the old block it
    copies. A removed block keeps its shortcut; with ``drop_identity`` (the default, SSS) one whose shortcut is the
    identity leaves its stage altogether, without it stays in place as its shortcut (module paths unchanged). A
    channel group whose name lies under a block's path (``layer{s}.{b}.``) belongs to that block's branch.
    ``branch_factors``: blocks with a branch take a learnable factor when the config has ``branch_scale: true``
    (what Sparse Structure Selection trains); False for a family whose branches can only be removed."""

    blocks: Callable[[ArchSpec], list[list[Block]]]
    without: Callable[[ArchSpec, Sequence[Sequence[bool]], bool], tuple[Config, dict[str, Block]]]
    branch_factors: bool = True


class ChannelSurgery(Protocol):
    """Channel groups and surgery of a family that finds its couplings itself (keep: sorted kept indices per group)."""

    def groups(self, spec: ArchSpec) -> list[ChannelGroup]: ...

    def shrink(
        self, model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]
    ) -> tuple[ArchSpec, nn.Module]: ...

    def mask(self, model: nn.Module, spec: ArchSpec, keep: Mapping[str, Sequence[int]]) -> nn.Module: ...

    def with_widths(self, spec: ArchSpec, widths: Mapping[str, int]) -> ArchSpec: ...


@dataclass(frozen=True)
class Family:
    """An architecture family: how to build a model from its spec, and what it declares about its structure."""

    name: str
    build: Callable[[ArchSpec], nn.Module]
    channel_groups: Callable[[Config], list[GroupSlot]] | None = None
    filter_numbering: Callable[[Config], list[NumberedConv]] | None = None
    residual_blocks: ResidualBlocks | None = None
    layer_costs: Mapping[type, CostRule] = field(default_factory=dict)
    # train in channels_last memory format under ``speed.channels_last=auto``: the layout measured faster for this
    # family (benchmarks/throughput.py; docs/speed.md "Training speed")
    channels_last: bool = True
    surgery: ChannelSurgery | None = None
    count: Callable[[nn.Module, int, bool], "Cost"] | None = None  # (model, input size, sparse) -> Cost

    def missing(self, needed: Sequence[str]) -> list[str]:
        """Which of the ``needed`` declarations (keys of :data:`DECLARATIONS`) this family does not make."""
        unknown = sorted(set(needed) - set(DECLARATIONS))
        if unknown:
            raise ValueError(f"unknown family declaration(s) {unknown}; known: {', '.join(DECLARATIONS)}")
        offered = {
            "channel_groups": self.channel_groups is not None or self.surgery is not None,
            "group_readers": self.channel_groups is not None,
            "filter_numbering": self.filter_numbering is not None,
            "residual_blocks": self.residual_blocks is not None,
        }
        return [name for name in needed if not offered[name]]


def check_widths(widths: Mapping[str, int], full: Mapping[str, int], owner: str) -> None:
    """ValueError unless every group ``widths`` names is one of ``owner``'s (``full``: name -> width) and its width is
    an integer in [1, that width]."""
    unknown = sorted(set(widths) - set(full))
    if unknown:
        raise ValueError(f"unknown channel group(s) {unknown} of {owner}")
    for name, k in widths.items():
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= full[name]:
            raise ValueError(f"group '{name}': width must be an integer in [1, {full[name]}], got {k!r}")


def config_get(config: Config, path: ConfigPath) -> Any:
    """The entry of a (nested) spec config at ``path``."""
    for key in path:
        config = config[key]  # type: ignore[index]
    return config


def config_put(config: Config, path: ConfigPath, value: Any) -> None:
    """Set the entry of a (nested) spec config at ``path``."""
    config_get(config, path[:-1])[path[-1]] = value


def vgg_numbering(widths: Sequence[int | str], modules_per_conv: int, pool: str = "M") -> list[NumberedConv]:
    """Reference L1-norm numbering of a VGG width list (``pool`` = a max-pool module): every conv from 1, a stage is
    the convs between two pools, a conv's group is its module path ``features.<index>``."""
    convs, conv_id, stage, module, stage_has_conv = [], 1, 0, 0, False
    for item in widths:
        if item == pool:
            if stage_has_conv:
                stage, stage_has_conv = stage + 1, False
            module += 1
            continue
        convs.append(NumberedConv(conv_id, stage, f"features.{module}"))
        conv_id, stage_has_conv, module = conv_id + 1, True, module + modules_per_conv
    return convs


def drop_branches(
    blocks: Sequence[Sequence[Block]],
    inner: Sequence[Sequence[Any]],
    keep: Sequence[Sequence[bool]],
    removed: Any,
    drop_identity: bool = True,
) -> tuple[list[list[Any]], dict[str, Block]]:
    """Per stage, the inner-width entries left once the branches ``keep`` marks False are removed: with
    ``drop_identity`` an identity block leaves its stage (its output is its input), every other removed block stays
    with ``removed`` as its entry (shortcut only). Also the map from each new block path to the old block it copies."""
    stages: list[list[Any]] = []
    old_of_new: dict[str, Block] = {}
    for s, (stage, flags, widths) in enumerate(zip(blocks, keep, inner)):
        kept: list[Any] = []
        for block, flag, width in zip(stage, flags, widths):
            if not flag and not block.downsamples and drop_identity:
                continue
            old_of_new[f"layer{s + 1}.{len(kept)}"] = block
            kept.append(copy.deepcopy(width) if flag else removed)
        stages.append(kept)
    return stages, old_of_new
