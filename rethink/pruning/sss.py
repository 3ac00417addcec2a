"""Sparse Structure Selection (Huang & Wang, 2018; docs/protocol.md#sss): learnable residual-branch factors, sparse
penalty, then removal of the branches whose factor is zero (``pruner=sss``), for every family that declares its
removable residual blocks (``Family.residual_blocks``) with branch factors (``ResidualBlocks.branch_factors``).

*Factors*: a residual spec with ``branch_scale: true`` in its config (model option ``branch_scale=True`` of
resnet56/resnet110/resnet34/resnet50/resnet50_preact, or :func:`with_branch_scale`) builds every block that has a
branch with a learnable scalar ``layer{s}.{b}.scale`` (init 1) multiplying the branch output (after its last BN; in
the pre-activation ResNet-50, after its last conv). The factor is a plain parameter of the block (no hooks, no
wrapper), so the state_dict holds exactly one extra entry per block and nothing when the flag is off: existing specs,
parameter counts and checkpoints are unchanged.

*Sparsity training* (:mod:`rethink.pruning.sss_training`, ``pruner.optimizer``): the SSS paper's accelerated
proximal gradient (``apg``, :class:`SSSAPG`: factors clamped at 0, no weight decay) or proximal SGD (``proximal_sgd``,
:class:`SSSPenalty`). Factors reach exactly zero.

*Pruning*: :func:`blocks_to_keep` reads the factors (kept iff ``|lambda| > threshold``), :func:`remove_blocks` builds
the pruned spec and a model carrying the kept weights, with each kept factor folded into its branch's last BN
(weight and bias times lambda) or the layer its family names (``Block.last_layer``: the pre-activation conv3), so
the pruned model computes what the scaled one did. A removed block whose shortcut is the identity is dropped from its
stage (its output is its input: post-ReLU in a post-activation ResNet, no ReLU after the addition in a
pre-activation one); a removed block whose shortcut downsamples keeps the shortcut only (``inner`` 0 in
``cifar_resnet``, ``[]`` in ``resnet_imagenet`` and ``preresnet_imagenet``).

*Predefined targets*: :func:`sss_target_spec` gives the paper's ResNet-41/32/26 (pruned ResNet-50s), as the reference
README specifies them and (ResNet-32/26) as the SSS paper's published sizes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from rethink.arch.family import Block, ResidualBlocks
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import check_matches, remove_branches, residual_declaration
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.registry import Needs, Pruner, PrunerSettings, register
from rethink.pruning.sss_training import SSSAPG, SSSPenalty, branch_scales
from rethink.settings.typed import NonNegativeFloat

# Per stage (a, b): a = residual branches kept in the stage, b = whether the first block's branch is one of them
# (if not, that block keeps only its projection shortcut). docs/protocol.md#sss. resnet41/32/26 are the reference
# README's (the nets the rethinking authors trained: the table's Scratch-E/B); its ResNet-32 and ResNet-26 are not the
# SSS paper's (whose Fine-tuned numbers the table shows): the *_sss_paper specs have the SSS paper's published sizes.
SSS_VARIANTS: dict[str, tuple[tuple[int, bool], ...]] = {
    "resnet41": ((0, False), (4, True), (6, True), (3, True)),
    "resnet32": ((1, False), (4, True), (4, True), (1, True)),
    "resnet26": ((0, False), (2, False), (5, False), (1, True)),
    "resnet32_sss_paper": ((0, False), (4, True), (4, True), (2, True)),
    "resnet26_sss_paper": ((0, False), (1, False), (6, True), (1, True)),
}

# Where a variant's sizes and the SSS paper's part (docs/protocol.md#sss): the note every result of it carries.
VARIANT_NOTES = {
    "resnet32": (
        "the reference README's ResNet-32 (1,F)(4,T)(4,T)(1,T) has 14.3M params, the SSS paper's ResNet-32 18.6M "
        "(the same 2.82 GMACs); pruner.variant=resnet32_sss_paper (0,F)(4,T)(4,T)(2,T) has both"
    ),
    "resnet26": (
        "the reference README's ResNet-26 (0,F)(2,F)(5,F)(1,T) has 14.9M params and 2.28 GMACs, the SSS paper's "
        "ResNet-26 15.6M and 2.33 GMACs; pruner.variant=resnet26_sss_paper (0,F)(1,F)(6,T)(1,T) has both"
    ),
    "resnet32_sss_paper": (
        "the SSS paper's ResNet-32 by its published sizes (18.6M params, 2.82 GMACs): (0,F)(4,T)(4,T)(2,T); the "
        "rethinking authors trained the reference README's pruner.variant=resnet32 (14.3M)"
    ),
    "resnet26_sss_paper": (
        "the SSS paper's ResNet-26 by its published sizes (15.6M params, 2.33 GMACs): (0,F)(1,F)(6,T)(1,T); the "
        "rethinking authors trained the reference README's pruner.variant=resnet26 (14.9M)"
    ),
}


def _declaration(spec: ArchSpec) -> ResidualBlocks:
    return residual_declaration(spec, "sss")


def residual_blocks(spec: ArchSpec) -> list[list[Block]]:
    """The residual blocks of ``spec`` per stage, in network order (its family's declaration)."""
    return _declaration(spec).blocks(spec)


def with_branch_scale(spec: ArchSpec, on: bool = True) -> ArchSpec:
    """``spec`` with the SSS branch factors switched on (``branch_scale: true``) or off (key removed)."""
    if on and not _declaration(spec).branch_factors:
        raise ValueError(
            f"sss needs residual branches that take a learnable factor, but family '{spec.family}' can only remove "
            "its branches (ResidualBlocks.branch_factors is false); use a ResNet (e.g. resnet56, resnet50)"
        )
    config = {k: v for k, v in spec.config.items() if k != "branch_scale"}
    if on:
        config["branch_scale"] = True
    return ArchSpec(spec.family, spec.num_classes, config)


# ----------------------------------------------------------------------------------------------------------- pruning


def blocks_to_keep(model: nn.Module, spec: ArchSpec, threshold: float = 0.0) -> list[list[bool]]:
    """Per stage, per block: True iff the block has a branch whose factor satisfies ``|lambda| > threshold``.

    Blocks without a branch are False. ``model`` must be built from ``spec`` with ``branch_scale: true``.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
        raise ValueError(f"sss threshold must be a number >= 0, got {threshold!r}")
    blocks = residual_blocks(spec)
    if not spec.config.get("branch_scale", False):
        raise ValueError("blocks_to_keep needs a model built with branch_scale: true (it reads the branch factors)")
    check_matches(model, spec)
    scales = branch_scales(model)
    return [
        [block.has_branch and abs(float(scales[block.path].detach())) > threshold for block in stage]
        for stage in blocks
    ]


def remove_blocks(model: nn.Module, spec: ArchSpec, keep: Sequence[Sequence[bool]]) -> tuple[ArchSpec, nn.Module]:
    """The spec without the branches ``keep`` marks False, and a model of it carrying ``model``'s weights.

    ``keep`` has one bool per block per stage (as :func:`blocks_to_keep`); a block without a branch must be False.
    Removed identity blocks leave their stage, removed downsampling blocks keep their shortcut (module docstring).
    Kept factors are folded into the branch's last BN (weight and bias), and the pruned spec has no
    ``branch_scale``: in eval mode the pruned model computes the same outputs (up to float rounding; exactly when
    the kept factors are powers of two). The new model is on ``model``'s device and dtype, in its train/eval mode.
    """
    residual_blocks(spec)  # a clear error for a family without residual blocks
    pruned_spec, pruned, old_of_new = remove_branches(model, spec, keep)
    scales = branch_scales(model)
    with torch.no_grad():
        for new_path, block in old_of_new.items():
            if block.path in scales and keep[block.stage][block.index]:  # kept branch with a factor: fold it
                factor = scales[block.path].detach()
                layer = pruned.get_submodule(f"{new_path}.{block.last_layer or block.last_bn}")
                layer.weight.mul_(factor.to(layer.weight))
                if layer.bias is not None:
                    layer.bias.mul_(factor.to(layer.bias))
    return pruned_spec, pruned


# ------------------------------------------------------------------------------------------------ predefined targets


def sss_target_spec(spec: ArchSpec, variant: str) -> ArchSpec:
    """The pruned ResNet-50 ``variant`` (a key of :data:`SSS_VARIANTS`; docs/protocol.md#sss) of ``spec``.

    ``spec`` must be a (possibly width-scaled) bottleneck ResNet-50 (``resnet50`` or ``resnet50_preact``) with every
    branch. Per stage (a, b): with b the
    stage keeps its first block and a - 1 further blocks; without, the first block keeps only its projection
    shortcut and a further blocks follow. The result has no ``branch_scale`` (targets are trained from scratch).
    """
    if variant not in SSS_VARIANTS:
        raise ValueError(f"unknown SSS variant {variant!r}; accepted: {', '.join(sorted(SSS_VARIANTS))}")
    blocks = residual_blocks(spec)
    config = spec.config
    if config.get("block") != "bottleneck" or [len(stage) for stage in blocks] != [3, 4, 6, 3]:
        raise ValueError(
            "the SSS ResNet-41/32/26 targets are pruned ResNet-50s: they need the resnet50 (or resnet50_preact) spec"
        )
    if not all(block.has_branch for stage in blocks for block in stage):
        raise ValueError("sss_target_spec needs an unpruned ResNet-50 spec (every block with its branch)")
    keep = [
        [index < kept if first_kept else 1 <= index <= kept for index in range(len(stage))]
        for (kept, first_kept), stage in zip(SSS_VARIANTS[variant], blocks)
    ]
    config, _ = _declaration(spec).without(spec, keep)
    return ArchSpec(spec.family, spec.num_classes, config)


# ---------------------------------------------------------------------------------------------------------- pruner


@dataclass(frozen=True)
class SSSSettings(PrunerSettings):
    """``pruner=sss``: a predefined ``variant`` (ResNet-41/32/26), or branch factors trained with the sparse penalty
    ``gamma`` by ``optimizer`` (``apg``: the SSS paper's; ``proximal_sgd``: SGD then a soft-threshold, this package's
    earlier behaviour) and the branches whose factor ends at or below ``threshold`` removed."""

    name: str = "sss"
    variant: str | None = None
    gamma: NonNegativeFloat = 0.01
    threshold: NonNegativeFloat = 0.0
    optimizer: Literal["apg", "proximal_sgd"] = "apg"


@register
class SSS(Pruner):
    """Sparse Structure Selection: removes whole residual branches."""

    name = "sss"
    title = "Sparse Structure Selection (Huang & Wang, 2018)"
    table_order = 50
    settings_type = SSSSettings
    stretches_scratch_b = True  # SSS's Scratch-B stretches every LR stage (docs/protocol.md#scratch-b)

    def requirements(self) -> Needs:
        if self.settings.variant is not None:
            return Needs(trained_model=False, predefined_target=True, family=("residual_blocks",))
        return Needs(trained_model=True, regularizer=True, family=("residual_blocks",))

    def prepare(self, large: ArchSpec) -> ArchSpec:
        return large if self.settings.variant is not None else with_branch_scale(large)

    def target(self, large: ArchSpec) -> ArchSpec | None:
        return None if self.settings.variant is None else sss_target_spec(large, str(self.settings.variant))

    def regularizer(self, large: ArchSpec) -> dict[str, Any]:
        return {"sss_gamma": self.settings.gamma, "sss_optimizer": self.settings.optimizer}

    def pretrain_callbacks(self, large: ArchSpec) -> list[pl.Callback]:
        penalty = SSSAPG if self.settings.optimizer == "apg" else SSSPenalty
        return [penalty(self.settings.gamma)]

    def notes(self) -> list[str]:
        variant = self.settings.variant
        return [VARIANT_NOTES[variant]] if variant in VARIANT_NOTES else []

    def decide(self, context: PruneContext) -> Decision:
        blocks = blocks_to_keep(context.model, context.spec, self.settings.threshold)
        spec, pruned = remove_blocks(context.model, context.spec, blocks)
        keep = {f"stage{i}": [int(b) for b in flags] for i, flags in enumerate(blocks)}
        return Decision(spec, pruned.state_dict(), keep)

    def apply(self, model: nn.Module, spec: ArchSpec, decision: Decision) -> nn.Module:
        flags = [[bool(b) for b in decision.keep[f"stage{i}"]] for i in range(len(decision.keep))]
        return remove_blocks(model, spec, flags)[1]

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        # the factors' optimizer names the row unless it is the paper's APG (results older than it record none)
        optimizer = {"optimizer": requested["optimizer"]} if requested.get("optimizer", "apg") != "apg" else {}
        if requested.get("variant"):
            return {"variant": str(requested["variant"]), **optimizer}
        return {k: requested[k] for k in ("gamma", "threshold") if requested.get(k) is not None} | optimizer
