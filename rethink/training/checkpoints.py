"""Weights given by the user (e.g. torchvision's ImageNet ResNet-34 for L1-norm pruning): read safely, check fit."""

from __future__ import annotations

from pathlib import Path

import torch

from rethink.arch import ArchSpec, build
from rethink.errors import UserError

_PREFIXES = ("module.", "model.")  # DataParallel and LightningModule wrappers
_BN_COUNTER = ".num_batches_tracked"  # absent from BatchNorm state saved by PyTorch < 0.4.1


def load_weights(path: str | Path, spec: ArchSpec, model_name: str) -> dict[str, torch.Tensor]:
    """A state_dict (or a checkpoint holding one under ``state_dict``) that loads strictly into ``build(spec)``.

    BatchNorm ``num_batches_tracked`` counters missing from the file (older torchvision weights) are filled with
    zeros, a fresh layer's value (used only by BN with ``momentum=None``); any other missing key is refused."""
    fix = "Give pretrain.weights a state_dict saved with torch.save(model.state_dict(), path) for this model."
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds pickled objects
        raise UserError(
            f"pretrain.weights='{path}' cannot be read as tensors ({type(exc).__name__}: {exc}). {fix}"
        ) from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise UserError(f"pretrain.weights='{path}' holds no state_dict of tensors. {fix}")
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: t for k, t in state.items()}
    expected = build(spec).state_dict()
    counters = [k for k in expected if k.endswith(_BN_COUNTER) and k not in state]
    state = state | {k: torch.zeros_like(expected[k]) for k in counters}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if keys
        )
        raise UserError(
            f"pretrain.weights='{path}' does not fit model '{model_name}' ({details}): it was saved from another "
            f"architecture or width. {fix}"
        )
    return state
