"""Network Slimming (Liu et al., 2017; docs/protocol.md#slimming): L1 sparsity on BN scales, then one global
threshold (``pruner=slimming``).

*Pool*: the BN scaling factors slimming looks at are those of the prunable channel groups that have a BN
(:func:`rethink.arch.surgery.prunable_groups`). For the slimming models this is every BN of the network: VGG-19
(5,504 channels), PreResNet-164 (12,112: bn1 via its channel selection, bn2, bn3 and the final BN), DenseNet-40
(9,360, all via selections) and the ImageNet VGG-11 (10,944: BatchNorm2d plus the classifier's BatchNorm1d). In
families whose residual-stream BNs cannot shrink (plain ResNets) those BNs are left out of the pool. A selection group
covers the BN entries at its currently selected positions (in selection order), so pruning a pruned model again only
ranks channels that are still alive.

Sparsity training adds ``s * sign(gamma)`` to the gradient of every pool BN weight after backward and before the
optimizer step (:class:`BNSparsity`). Pruning concatenates ``|gamma|`` over the pool, sorts it ascending and keeps
a channel iff ``|gamma| > sorted[int(total * ratio)]`` (strict, as the reference code: even ratio 0 drops the smallest
channel). A group the threshold empties (``on_empty`` of :func:`global_threshold_cut`) keeps its largest channels
(``keep_min``), stops the run (``error``), or, inside a residual branch, removes that branch and the block keeps only
its shortcut (``remove_block``, :func:`slim`: the reference's mask implementation leaves such a branch dead).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from rethink.arch.family import ChannelGroup, config_get
from rethink.arch.registry import family_of
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_slots, prunable_groups, remove_branches, shrink
from rethink.errors import UserError
from rethink.pruning.alignment import RoundTo, aligned_width
from rethink.pruning.context import PruneContext
from rethink.pruning.criteria import keep_largest
from rethink.pruning.decision import Decision
from rethink.pruning.registry import Curve, Needs, Pruner, PrunerSettings, register
from rethink.settings.typed import NonNegativeFloat, PositiveInt, Ratio

ON_EMPTY = ("keep_min", "error", "remove_block")


# ------------------------------------------------------------------------------------------------------ the pool


def slimming_groups(spec: ArchSpec, purpose: str = "network slimming") -> list[ChannelGroup]:
    """The prunable groups of ``spec`` that have a BN (the threshold pool), in network order.

    ValueError when there is none: slimming needs BN scaling factors (e.g. vgg16_imagenet has no BN).
    """
    groups = [group for group in prunable_groups(spec) if group.bn is not None]
    if not groups:
        raise ValueError(
            f"{purpose} on a model without BN: family '{spec.family}' has no BatchNorm scaling factors in its "
            "prunable channel groups; network slimming needs a model with BN (e.g. vgg11_bn, not vgg16_imagenet)"
        )
    return groups


def slimming_bn_paths(spec: ArchSpec) -> list[str]:
    """The distinct BN module paths of the pool, in network order: the BNs the sparsity penalty applies to."""
    groups = slimming_groups(spec, "sparsity penalty")
    return list(dict.fromkeys(bn for group in groups for bn in group.scale_bns()))


def _bn_module(model: nn.Module, path: str) -> _BatchNorm:
    """The affine BatchNorm at ``path`` of ``model``, or a clear ValueError."""
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"the model has no module '{path}' (BN paths are relative to the network)") from None
    if not isinstance(module, _BatchNorm):
        raise ValueError(f"module '{path}' is a {type(module).__name__}, not a BatchNorm")
    if module.weight is None:
        raise ValueError(f"BatchNorm '{path}' has no affine weight (affine=False): it has no scaling factors")
    return module


# ---------------------------------------------------------------------------------------------- sparsity training


def add_bn_sparsity_grad(model: nn.Module, bn_paths: Sequence[str], sparsity: float) -> None:
    """Add ``sparsity * sign(weight)`` to ``weight.grad`` of the BNs at ``bn_paths`` (the L1 sub-gradient).

    Nothing else is touched (not the BN biases). A BN weight that requires grad but has no gradient yet gets the
    penalty term as its gradient; a frozen one (``requires_grad=False``) is skipped.
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not sparsity >= 0:
        raise ValueError(f"sparsity must be a number >= 0, got {sparsity!r}")
    with torch.no_grad():
        for path in dict.fromkeys(bn_paths):  # each BN once, even if named twice
            weight = _bn_module(model, path).weight
            if not weight.requires_grad:
                continue
            term = torch.sign(weight.detach()) * sparsity
            if weight.grad is None:
                weight.grad = term.to(weight.dtype)
            else:
                weight.grad.add_(term.to(weight.grad.dtype))


class BNSparsity(pl.Callback):
    """Network-slimming sparsity training: the L1 sub-gradient ``sparsity * sign(gamma)`` on the pool BN weights.

    Runs in ``on_before_optimizer_step``: after backward (and, with 16-bit AMP, after the gradients are unscaled),
    before the optimizer step; Lightning clips gradients after this hook, so a configured clip applies to the
    penalised gradient (the reference code does not clip). With gradient accumulation it runs once per optimizer
    step. ``bn_paths`` (e.g. :func:`slimming_bn_paths`) are relative to the network: ``pl_module.<network_attr>``,
    or the LightningModule itself when ``network_attr`` is None.
    """

    def __init__(self, sparsity: float, bn_paths: Sequence[str], network_attr: str | None = "model") -> None:
        super().__init__()
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not sparsity >= 0:
            raise ValueError(f"sparsity must be a number >= 0, got {sparsity!r}")
        if not bn_paths:
            raise ValueError("BNSparsity needs at least one BN path")
        self.sparsity = float(sparsity)
        self.bn_paths = list(bn_paths)
        self.network_attr = network_attr

    def _network(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.network_attr is None:
            return pl_module
        network = getattr(pl_module, self.network_attr, None)
        if not isinstance(network, nn.Module):
            raise ValueError(f"BNSparsity: the LightningModule has no network attribute '{self.network_attr}'")
        return network

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        add_bn_sparsity_grad(self._network(pl_module), self.bn_paths, self.sparsity)


# -------------------------------------------------------------------------------------------------------- pruning


def bn_scores(model: nn.Module, spec: ArchSpec) -> dict[str, Tensor]:
    """Group name -> ``|gamma|`` of its channels (float32, CPU), for every pool group in network order.

    A coupled group (a residual stream of the graph family) has several BNs: its score is the mean of their
    ``|gamma|`` per channel (docs/protocol.md#graph-models). A selection group's channels are the BN entries at its
    selected positions, in selection order (the model's selection must match the spec's).
    """
    selections = {}
    if family_of(spec).channel_groups is not None:
        selections = {s.group.name: s.selection_path for s in group_slots(spec) if s.selection_path is not None}
    scores: dict[str, Tensor] = {}
    for group in slimming_groups(spec):
        gammas = [_bn_module(model, bn).weight.detach().float().cpu().abs() for bn in group.scale_bns()]
        if any(gamma.numel() != gammas[0].numel() for gamma in gammas):
            raise ValueError(f"group '{group.name}': its BNs {group.scale_bns()} differ in size")
        gamma = torch.stack(gammas).mean(0)
        if group.name in selections:
            chosen = config_get(spec.config, selections[group.name])
            indices = getattr(model.get_submodule(group.name), "indices", None)
            if indices is None or indices.tolist() != chosen:
                raise ValueError(f"group '{group.name}': the model's selected channels differ from the spec's")
            gamma = gamma[torch.tensor(chosen, dtype=torch.long)]
        if gamma.numel() != group.width:
            raise ValueError(f"group '{group.name}': BN '{group.bn}' has {gamma.numel()} entries, spec {group.width}")
        scores[group.name] = gamma
    return scores


@dataclass(frozen=True)
class ThresholdCut:
    """What the global threshold keeps: ``keep`` per pool group (``[]``: the group is emptied and its residual
    branch goes, ``on_empty="remove_block"``), the ``threshold`` and the groups it ``emptied`` (network order)."""

    threshold: float
    keep: dict[str, list[int]]
    emptied: list[str]


def global_threshold_cut(
    model: nn.Module, spec: ArchSpec, ratio: float, min_channels: int = 1, on_empty: str = "keep_min"
) -> ThresholdCut:
    """Network slimming's global BN threshold over the pool (docs/protocol.md#slimming).

    ``thr = sorted(|gamma| over the pool)[int(total * ratio)]``; a channel is kept iff ``|gamma| > thr``. A group
    that would keep fewer than ``min_channels``: ``on_empty="keep_min"`` keeps its ``min_channels`` largest-``|gamma|``
    channels (all of them if it is narrower), ``"error"`` raises ValueError naming the groups, ``"remove_block"``
    keeps nothing of a group the threshold empties (``[]``: :func:`slim` removes the residual branch it lies in) and
    tops up the others as keep_min. Every pool group is in ``keep`` (sorted indices relative to its current
    channels, ready for ``surgery.shrink`` / ``surgery.mask``; a group keeping everything lists all its indices);
    groups without BN are absent and stay unpruned.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ValueError(f"slimming prune ratio must be a number in [0, 1), got {ratio!r}")
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"min_channels must be an integer >= 1, got {min_channels!r}")
    if on_empty not in ON_EMPTY:
        raise ValueError(f"on_empty must be one of {', '.join(ON_EMPTY)}, got {on_empty!r}")
    scores = bn_scores(model, spec)
    pool = torch.sort(torch.cat(list(scores.values()))).values
    threshold = pool[int(pool.numel() * ratio)]
    keep: dict[str, list[int]] = {}
    short: list[str] = []
    emptied: list[str] = []
    for name, score in scores.items():
        kept = torch.nonzero(score > threshold).flatten().tolist()
        if not kept:
            emptied.append(name)
        if len(kept) < min(min_channels, score.numel()) and not (on_empty == "remove_block" and not kept):
            short.append(f"{name} ({len(kept)} of {score.numel()})")
            kept = keep_largest(score, min(min_channels, score.numel()))
        keep[name] = kept
    if short and on_empty == "error":
        raise ValueError(
            f"global BN threshold {threshold.item():.4g} (prune ratio {ratio}) leaves fewer than {min_channels} "
            f"channel(s) in group(s) {', '.join(short)}: the ratio is too high for these BN scales and those layers "
            "would collapse; lower the ratio, or use on_empty='keep_min' to keep their largest channels"
        )
    return ThresholdCut(threshold.item(), keep, emptied)


def aligned_cut(model: nn.Module, spec: ArchSpec, cut: ThresholdCut, round_to: int | None) -> ThresholdCut:
    """``cut`` with every kept width rounded to a multiple of ``round_to`` (``pruner.round_to``): the channels of
    largest ``|gamma|`` — the threshold's own ranking — are kept, so rounding up adds the next-highest scales and
    rounding down drops the lowest kept ones. An emptied group (``remove_block``) stays empty."""
    if not round_to or round_to == 1:
        return cut
    scores = bn_scores(model, spec)
    keep = {
        name: kept if not kept else keep_largest(scores[name], aligned_width(len(kept), scores[name].numel(), round_to))
        for name, kept in cut.keep.items()
    }
    return dataclasses.replace(cut, keep=keep)


def global_threshold_keep(
    model: nn.Module, spec: ArchSpec, ratio: float, min_channels: int = 1, on_empty: str = "keep_min"
) -> dict[str, list[int]]:
    """Kept channels per pool group under the global BN threshold: ``global_threshold_cut(...).keep``."""
    return global_threshold_cut(model, spec, ratio, min_channels, on_empty).keep


def slim(model: nn.Module, spec: ArchSpec, keep: dict[str, list[int]]) -> tuple[ArchSpec, nn.Module, list[str]]:
    """The pruned spec and model of a slimming ``keep``, and the residual blocks removed (network order).

    Groups keeping channels are shrunk to them (``surgery.shrink``). A group keeping none (``[]``) removes the
    residual branch it lies in with every group of that branch, the block keeping its shortcut in place (module
    paths unchanged; :func:`rethink.arch.surgery.remove_branches`): the reference's mask implementation zeroes the
    group's BN scales and shifts, which leaves the branch dead. ValueError naming the groups when an emptied group
    lies in no removable residual branch (the family declares no residual blocks, or the group is outside them).
    """
    emptied = [name for name, kept in keep.items() if not kept]
    if not emptied:
        pruned_spec, pruned = shrink(model, spec, keep)
        return pruned_spec, pruned, []
    declared = family_of(spec).residual_blocks
    branches = [] if declared is None else [b for stage in declared.blocks(spec) for b in stage if b.has_branch]
    owner = {name: next((b.path for b in branches if name.startswith(f"{b.path}.")), None) for name in emptied}
    outside = [name for name, path in owner.items() if path is None]
    if outside:
        where = (
            f"family '{spec.family}' declares no residual blocks"
            if declared is None
            else f"they lie in no residual branch of family '{spec.family}'"
        )
        raise ValueError(
            f"the global BN threshold empties group(s) {', '.join(outside)}, but {where}: on_empty=remove_block "
            "removes only residual branches (an emptied plain layer or head would cut the network); use "
            "on_empty=keep_min to keep their largest channels, or lower the ratio"
        )
    removed = [b.path for b in branches if b.path in owner.values()]
    inside = tuple(f"{path}." for path in removed)
    shrunk_spec, shrunk = shrink(model, spec, {n: k for n, k in keep.items() if not n.startswith(inside)})
    flags = [[b.has_branch and b.path not in removed for b in stage] for stage in declared.blocks(shrunk_spec)]
    pruned_spec, pruned, _ = remove_branches(shrunk, shrunk_spec, flags, drop_identity=False)
    return pruned_spec, pruned, removed


# --------------------------------------------------------------------------------------------------------- pruner


@dataclass(frozen=True)
class SlimmingSettings(PrunerSettings):
    """``pruner=slimming``: remove ``ratio`` of the BN channels by one global threshold after sparsity training."""

    name: str = "slimming"
    ratio: Ratio = 0.5
    sparsity: NonNegativeFloat | None = None  # the L1 penalty s; None: default_sparsity of the model
    default_sparsity: dict[str, float] | None = None  # the paper's s per model
    fallback_sparsity: NonNegativeFloat = 1.0e-4  # s of a model default_sparsity does not list
    min_channels: PositiveInt = 1  # a layer the threshold would empty keeps this many channels ...
    # ... or the run stops with a message (error), or its residual branch is removed (remove_block)
    on_empty: Literal["keep_min", "error", "remove_block"] = "keep_min"
    round_to: RoundTo = None  # kept widths rounded to multiples of this (auto: the device's; docs/speed.md)
    added_later: ClassVar[tuple[str, ...]] = ("round_to",)


@register
class Slimming(Pruner):
    """Network Slimming: BN sparsity during pretraining, then a global BN threshold over the trained model."""

    name = "slimming"
    title = "Network Slimming (Liu et al., 2017)"
    table_order = 30
    settings_type = SlimmingSettings
    needs = Needs(trained_model=True, regularizer=True, family=("channel_groups",))

    def __init__(self, settings: SlimmingSettings, model_name: str) -> None:
        super().__init__(settings, model_name)
        defaults = settings.default_sparsity or {}
        fallback = float(defaults.get(model_name, settings.fallback_sparsity))
        self.sparsity = fallback if settings.sparsity is None else settings.sparsity

    def check(self, large: ArchSpec) -> None:
        slimming_bn_paths(large)  # ValueError for a model without BN scaling factors
        if self.settings.on_empty == "remove_block" and family_of(large).residual_blocks is None:
            raise ValueError(
                f"on_empty=remove_block removes the residual branch of a layer the threshold empties, but family "
                f"'{large.family}' has no removable residual blocks (Family.residual_blocks); it needs a residual "
                "model (e.g. preresnet164, resnet56). Use pruner.on_empty=keep_min to keep the largest channels of "
                "such a layer, or pruner.on_empty=error to stop"
            )

    def regularizer(self, large: ArchSpec) -> dict[str, Any]:
        return {"bn_sparsity": self.sparsity, "bn_paths": slimming_bn_paths(large)}

    def pretrain_callbacks(self, large: ArchSpec) -> list[pl.Callback]:
        return [BNSparsity(self.sparsity, slimming_bn_paths(large))]

    def requested(self) -> dict[str, Any]:
        s = self.settings
        aligned = {} if s.round_to is None else {"round_to": s.round_to}
        return {
            "ratio": s.ratio,
            "sparsity": self.sparsity,
            "min_channels": s.min_channels,
            "on_empty": s.on_empty,
            **aligned,
        }

    def decide(self, context: PruneContext) -> Decision:
        s = self.settings
        try:
            cut = global_threshold_cut(context.model, context.spec, s.ratio, s.min_channels, s.on_empty)
            requested = {name: len(kept) for name, kept in cut.keep.items()}
            cut = aligned_cut(context.model, context.spec, cut, self.round_to())
            spec, pruned, removed = slim(context.model, context.spec, cut.keep)
        except ValueError as exc:  # the threshold empties a layer that on_empty cannot handle
            raise UserError(
                f"pruner=slimming: {exc}. The trained large model is stored: the same command with the pruner.* "
                "override changed reuses it."
            ) from None
        inside = tuple(f"{path}." for path in removed)
        keep = {name: [] if name.startswith(inside) else kept for name, kept in cut.keep.items()}
        notes: dict[str, Any] = {"threshold": cut.threshold, "emptied_groups": cut.emptied}
        if self.round_to():
            notes["requested_widths"] = requested
        if s.on_empty == "remove_block":
            gone = [group.name for group in prunable_groups(context.spec) if group.name.startswith(inside)]
            notes |= {"removed_blocks": removed, "removed_groups": gone}
        return Decision(spec, pruned.state_dict(), keep, notes=notes)

    def apply(self, model: nn.Module, spec: ArchSpec, decision: Decision) -> nn.Module:
        return slim(model, spec, decision.keep)[1]

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        out = {"ratio": requested.get("ratio")}
        if requested.get("sparsity") is not None:
            out["sparsity"] = requested["sparsity"]
        return out

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        return Curve("channels", "automatic", float(requested["ratio"]))
