"""Every pruner's decision on a trained large model, behind one interface: :func:`decide` returns what to keep and the
pruned model, :func:`apply_decision` cuts another copy of the large model (the original init, for lottery tickets) the
same way, :func:`decision_digest` fingerprints a decision (DDP ranks must agree; iterative rounds are keyed by it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from rethink.arch import ArchSpec
from rethink.errors import UserError
from rethink.pruning.magnitude import apply_masks, magnitude_masks
from rethink.pruning.prune import prune
from rethink.pruning.surgery import shrink

Masks = dict[str, torch.Tensor]  # conv module path -> bool mask of kept weights (unstructured pruning)
# iterative magnitude pruning: (round number, masks so far) -> the weights of the large model retrained under them
RetrainRound = Callable[[int, Masks], dict[str, torch.Tensor]]


@dataclass
class Decision:
    """What a pruner keeps of the large model, and the pruned model with the trained weights."""

    keep: dict[str, list[int]]  # kept channel indices per group (SSS: kept-block flags per stage ``stage<i>``)
    spec: ArchSpec
    model: nn.Module
    masks: Masks | None = None  # unstructured pruning: the spec stays the large one, the masks zero the weights


def decide(
    model: nn.Module,
    large: ArchSpec,
    pruner: dict[str, Any],
    target: ArchSpec | None,
    seed: int,
    retrain_round: RetrainRound,
) -> Decision:
    """The decision of ``pruner`` (its resolved settings) on ``model``, a trained copy of ``large``. ``target`` is the
    predefined pruned spec of L1/random pruning; ``retrain_round`` trains one round of iterative magnitude pruning."""
    name = pruner["name"]
    if name == "magnitude":
        rounds = pruner["rounds"]
        masks = magnitude_masks(model, pruner["round_ratio"] if rounds > 1 else pruner["ratio"], pruner["scope"])
        for round_index in range(2, rounds + 1):  # iterative: retrain init x mask, prune a share of what is left
            model.load_state_dict(retrain_round(round_index, masks), strict=True)
            masks = magnitude_masks(model, pruner["round_ratio"], pruner["scope"], existing=masks)
        apply_masks(model, masks)
        return Decision({}, large, model, masks)
    if name == "sss":
        from rethink.pruning.sss import blocks_to_keep, remove_blocks

        blocks = blocks_to_keep(model, large, pruner["threshold"])
        spec, pruned = remove_blocks(model, large, blocks)
        return Decision({f"stage{i}": [int(b) for b in flags] for i, flags in enumerate(blocks)}, spec, pruned)
    if name == "slimming":
        from rethink.pruning.slimming import global_threshold_keep

        try:
            keep = global_threshold_keep(model, large, pruner["ratio"], pruner["min_channels"], pruner["on_empty"])
        except ValueError as exc:
            raise UserError(f"pruner=slimming: {exc}") from None
        return Decision(keep, *shrink(model, large, keep))
    if target is None:
        raise RuntimeError(f"pruner {name!r} needs a predefined target spec")  # an internal invariant of the plan
    return Decision(*prune(model, large, target, name, seed))


def apply_decision(
    model: nn.Module, large: ArchSpec, pruner_name: str, keep: dict[str, list[int]], masks: Masks | None
) -> nn.Module:
    """``model`` (another copy of ``large``) pruned by a stored decision, as :func:`decide` pruned the trained one."""
    if masks is not None:
        apply_masks(model, masks)
        return model
    if pruner_name == "sss":
        from rethink.pruning.sss import remove_blocks

        return remove_blocks(model, large, [[bool(b) for b in keep[f"stage{i}"]] for i in range(len(keep))])[1]
    return shrink(model, large, keep)[1]


def decision_digest(keep: dict[str, list[int]], masks: Masks | None = None) -> str:
    """sha256 of a pruning decision: the kept channel indices of every layer group, and any weight masks."""
    digest = hashlib.sha256(json.dumps({n: list(map(int, i)) for n, i in keep.items()}, sort_keys=True).encode())
    for name in sorted(masks or {}):
        digest.update(name.encode() + masks[name].cpu().numpy().tobytes())
    return digest.hexdigest()
