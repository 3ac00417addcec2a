"""Weight masks of unstructured (weight-level) magnitude pruning of Conv2d weights: masks, mask keeping, sparse
re-init, reports (the pruner itself is :mod:`rethink.pruning.magnitude`).

- :func:`magnitude_masks` — Han et al. (2015) as coded in the reference (docs/protocol.md#magnitude): ONE global
  threshold over all Conv2d weights (stem, every conv, 1x1 shortcut/transition convs; never Linear or BN): sort
  ``|w|`` ascending, ``thr = sorted[int(total * ratio)]``, keep ``|w| > thr``. With ``existing`` masks it is one
  round of iterative pruning (docs/protocol.md#lottery): ``ratio`` of the *remaining* weights, threshold index
  ``#zeros + int(#nonzero * ratio)``. Scope ``"layer"`` prunes the same fraction of every conv layer separately (the
  uniform baseline of the paper's Fig. 3).
- :class:`MaskKeeper` — a Lightning callback that keeps pruned weights at exactly zero through training.
- :func:`sparse_he_init_` — the sparsity-aware He re-initialisation of the scratch runs (docs/protocol.md#magnitude).
- :func:`sparsity_report`, :func:`sparse_flops_ratio` — kept/total counts and the Scratch-B FLOP ratio
  (docs/protocol.md#flops).

Masks are ``dict[str, Tensor]``: bool tensors shaped like the weight, keyed by the Conv2d module path in the model
(``model.named_modules()``), True = kept. They are stored as ``masks.pt`` (:func:`save_masks` / :func:`load_masks`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from rethink.arch.cost import count_cost
from rethink.io import save_tensors_atomic

SCOPES = ("global", "layer")


def conv_weight_paths(model: nn.Module) -> list[str]:
    """Module paths of every ``nn.Conv2d`` of ``model``, in ``named_modules`` order (the prunable layers)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def _convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: module for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}


def check_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Raise ValueError naming the layer unless ``masks`` holds exactly one bool mask per Conv2d, shaped like it."""
    if not isinstance(masks, dict):
        raise ValueError(f"masks must be a dict of conv path -> bool tensor, got {type(masks).__name__}")
    convs = _convs(model)
    for name, conv in convs.items():
        if name not in masks:
            raise ValueError(f"no mask for conv layer {name!r}")
        mask = masks[name]
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask of conv layer {name!r} must be a bool tensor, got {kind}")
        if tuple(mask.shape) != tuple(conv.weight.shape):
            raise ValueError(
                f"mask of conv layer {name!r} has shape {tuple(mask.shape)}, its weight {tuple(conv.weight.shape)}"
            )
    extra = [name for name in masks if name not in convs]
    if extra:
        raise ValueError(f"mask for {extra[0]!r}, which is not a Conv2d of the model ({len(extra)} such key(s))")


def _check_ratio(ratio: float) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"prune ratio must be a number in [0, 1), got {ratio!r}")
    return float(ratio)


def _scores(model: nn.Module, existing: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """``|w|`` of every conv as float32 (on the weight's device), with already-pruned entries set to 0."""
    scores = {}
    for name, conv in _convs(model).items():
        score = conv.weight.detach().abs().float()
        if existing is not None:
            score = score.masked_fill(~existing[name].to(score.device), 0.0)
        scores[name] = score
    return scores


def _kth_smallest(values: Tensor, index: int) -> Tensor:
    """``sorted(values)[index]`` (0-based) without a full sort."""
    return torch.kthvalue(values.flatten().cpu(), index + 1).values


def magnitude_masks(
    model: nn.Module, ratio: float, scope: str = "global", existing: dict[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Keep-masks (bool, CPU, keyed by conv path) pruning the smallest-magnitude fraction ``ratio`` of conv weights.

    ``scope="global"`` follows the reference rule exactly (docs/protocol.md#magnitude): over the concatenation of all
    conv weights, ``thr = sorted(|w|)[int(total * ratio)]`` and ``keep = |w| > thr`` — so about
    ``int(total * ratio) + 1`` weights go (more on ties), and layers with small weights lose more. With ``existing``
    masks (one iterative round, docs/protocol.md#lottery) the pruned entries count as zeros and the index is
    ``#zeros + int(#nonzero * ratio)``; a pruned weight is never kept again (its score 0 is never ``> thr``).

    ``scope="layer"`` prunes every conv layer by the same fraction: exactly ``int(n * ratio)`` of its ``n`` weights
    (with ``existing``: its zeros plus ``int(#nonzero * ratio)`` of its remaining weights), the smallest ``|w|`` first,
    ties broken by position.

    ``ratio == 0`` prunes nothing (returns ``existing`` or all-True masks) rather than the reference rule's single
    smallest weight. Raises ValueError for a ratio outside [0, 1), an unknown scope, masks that do not match the model,
    or a model without conv weights left to prune.
    """
    ratio = _check_ratio(ratio)
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; expected one of {SCOPES}")
    if existing is not None:
        check_masks(model, existing)
    scores = _scores(model, existing)
    if not scores:
        raise ValueError("the model has no Conv2d layer to prune")
    if ratio == 0.0:
        if existing is not None:
            return {name: mask.detach().cpu().clone() for name, mask in existing.items()}
        return {name: torch.ones_like(score, dtype=torch.bool, device="cpu") for name, score in scores.items()}

    if scope == "global":
        flat = torch.cat([score.flatten().cpu() for score in scores.values()])
        index = _prune_index(flat, ratio, existing is not None, "all conv layers")
        threshold = _kth_smallest(flat, index)
        return {name: (score.cpu() > threshold) for name, score in scores.items()}

    counts = {
        name: _prune_index(s.flatten(), ratio, existing is not None, f"conv layer {name!r}")
        for name, s in scores.items()
    }
    return _smallest_out(scores, counts)


def _smallest_out(scores: Mapping[str, Tensor], counts: Mapping[str, int]) -> dict[str, Tensor]:
    """Keep-masks removing the ``counts[name]`` smallest scores of each layer (ties broken by position)."""
    masks = {}
    for name, score in scores.items():
        flat = score.flatten().cpu()
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[torch.argsort(flat, stable=True)[: counts[name]]] = False
        masks[name] = keep.view_as(score)
    return masks


def layer_masks(model: nn.Module, ratios: Mapping[str, float]) -> dict[str, Tensor]:
    """Keep-masks removing exactly ``int(n * ratios[name])`` of the ``n`` weights of each conv (smallest ``|w|``
    first); a conv not in ``ratios`` keeps everything."""
    scores = _scores(model, None)
    unknown = sorted(set(ratios) - set(scores))
    if unknown:
        raise ValueError(f"no conv layer {unknown[0]!r} in the model")
    counts = {name: int(score.numel() * _check_ratio(ratios.get(name, 0.0))) for name, score in scores.items()}
    return _smallest_out(scores, counts)


def is_3x3(mask: Tensor) -> bool:
    """Whether a conv weight (mask) has 3x3 kernels."""
    return tuple(mask.shape[-2:]) == (3, 3)


def stage_kept_weights(masks: Mapping[str, Tensor], sizes: Mapping[str, int]) -> dict[int, float]:
    """Per stage (feature-map size, largest first): the kept fraction of all its 3x3 conv weights pooled (kept 3x3
    weights of the stage / its 3x3 weights), so a large layer weighs more than a small one."""
    counts: dict[int, list[int]] = {}
    for name, mask in masks.items():
        if is_3x3(mask) and name in sizes:
            kept_total = counts.setdefault(sizes[name], [0, 0])
            kept_total[0] += int(mask.sum())
            kept_total[1] += mask.numel()
    return {size: counts[size][0] / counts[size][1] for size in sorted(counts, reverse=True)}


def _prune_index(flat: Tensor, ratio: float, iterative: bool, where: str) -> int:
    """``int(total * ratio)``, or ``#zeros + int(#nonzero * ratio)`` for an iterative round."""
    if not iterative:
        return int(flat.numel() * ratio)
    nonzero = int(torch.count_nonzero(flat).item())
    if nonzero == 0:
        raise ValueError(f"no unpruned conv weight left in {where}")
    return flat.numel() - nonzero + int(nonzero * ratio)


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Zero the pruned conv weights in place (``weight *= mask``, as an exact +0.0 fill)."""
    check_masks(model, masks)
    convs = _convs(model)
    with torch.no_grad():
        for name, mask in masks.items():
            weight = convs[name].weight
            weight.masked_fill_(~mask.to(weight.device), 0.0)


class MaskKeeper(pl.Callback):
    """Keeps the pruned conv weights of a LightningModule at exactly zero through any training
    (docs/protocol.md#magnitude).

    The masks are applied at ``on_fit_start``; every optimizer step sees zero gradients at pruned positions
    (``on_before_optimizer_step``, after AMP unscaling), and the masks are re-applied to the weights after every batch
    (``on_train_batch_end``) so neither momentum nor weight decay can move a pruned weight. The masks come from the
    constructor (the caller keeps them in ``masks.pt``), so resuming from a Lightning checkpoint needs no callback
    state. Mask keys are module paths in ``pl_module.<attr>`` (default ``"model"``, the ``ClassificationModule``
    network); with ``attr=None``, or when the module has no such attribute, paths in the LightningModule itself.
    """

    def __init__(self, masks: dict[str, Tensor], attr: str | None = "model") -> None:
        super().__init__()
        self.masks = {name: mask.detach().to("cpu", copy=True) for name, mask in masks.items()}
        self.attr = attr
        self._pairs: list[tuple[nn.Parameter, Tensor]] | None = None

    def _network(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.attr is not None and isinstance(getattr(pl_module, self.attr, None), nn.Module):
            return getattr(pl_module, self.attr)
        return pl_module

    def _weight_masks(self, pl_module: pl.LightningModule) -> list[tuple[nn.Parameter, Tensor]]:
        """(weight, keep-mask on the weight's device) of every conv; rebuilt when a weight changed device."""
        if self._pairs is None or any(mask.device != weight.device for weight, mask in self._pairs):
            network = self._network(pl_module)
            check_masks(network, self.masks)
            convs = _convs(network)
            self._pairs = [
                (convs[name].weight, mask.to(convs[name].weight.device)) for name, mask in self.masks.items()
            ]
        return self._pairs

    def _zero_weights(self, pl_module: pl.LightningModule) -> None:
        with torch.no_grad():
            for weight, mask in self._weight_masks(pl_module):
                weight.masked_fill_(~mask, 0.0)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pairs = None
        self._zero_weights(pl_module)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        with torch.no_grad():
            for weight, mask in self._weight_masks(pl_module):
                if weight.grad is not None:
                    weight.grad.masked_fill_(~mask, 0.0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._zero_weights(pl_module)


def sparse_he_init_(model: nn.Module, masks: dict[str, Tensor], generator: torch.Generator | None = None) -> None:
    """Scratch re-initialisation (docs/protocol.md#magnitude) of every masked conv, in place; other layers untouched.

    ``w ~ N(0, sqrt(2 / n))`` with ``n = kept / in_channels`` (= density * k*k*out_channels, a sparsity-aware fan-out
    He init), then ``w *= mask``. A layer with nothing kept is all zeros. ``generator`` (on the weights' device)
    makes the draw independent of the global RNG.
    """
    check_masks(model, masks)
    convs = _convs(model)
    with torch.no_grad():
        for name, mask in masks.items():
            weight = convs[name].weight
            mask = mask.to(weight.device)
            n = int(mask.sum().item()) / convs[name].in_channels
            if n > 0:
                weight.normal_(0.0, math.sqrt(2.0 / n), generator=generator)
            weight.masked_fill_(~mask, 0.0)


def _counts(kept: int, total: int) -> dict[str, Any]:
    density = kept / total if total else 0.0
    return {"kept": kept, "total": total, "density": density, "sparsity": 1.0 - density if total else 0.0}


def sparsity_report(masks: dict[str, Tensor]) -> dict[str, Any]:
    """``{"total": counts, "layers": {path: counts}}`` with counts ``{kept, total, density, sparsity}`` (JSON-ready)."""
    layers = {name: _counts(int(mask.sum().item()), mask.numel()) for name, mask in masks.items()}
    kept = sum(layer["kept"] for layer in layers.values())
    total = sum(layer["total"] for layer in layers.values())
    return {"total": _counts(kept, total), "layers": layers}


def sparse_flops_ratio(model_dense: nn.Module, model_masked: nn.Module, input_size: int) -> float:
    """Dense FLOPs of ``model_dense`` over the sparse FLOPs (nonzero conv weights) of ``model_masked``
    (docs/protocol.md#flops).

    Scratch-B trains ``int(epochs * ratio)`` epochs. ``model_masked`` must already hold the masked weights (apply the
    masks first) — computing it before loading/masking gives 1.0, the reference's Scratch-B bug
    (docs/protocol.md#deviations).
    """
    dense = count_cost(model_dense, input_size).flops
    sparse = count_cost(model_masked, input_size, sparse=True).flops
    return dense / sparse


def save_masks(path: str | Path, masks: dict[str, Tensor]) -> None:
    """Write ``masks`` (bool CPU tensors) to ``path`` atomically: temp file in the same directory, then os.replace."""
    path = Path(path)
    payload = {}
    for name, mask in masks.items():
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"mask of conv layer {name!r} must be a bool tensor")
        payload[str(name)] = mask.detach().to("cpu").contiguous().clone()
    save_tensors_atomic(path, payload)


def load_masks(path: str | Path) -> dict[str, Tensor]:
    """Masks written by :func:`save_masks` (loaded with ``weights_only=True`` onto the CPU)."""
    masks = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(masks, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) and v.dtype == torch.bool for k, v in masks.items()
    ):
        raise ValueError(f"{path} does not hold a dict of conv path -> bool mask")
    return masks
