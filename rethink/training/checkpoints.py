"""Weights given by the user (e.g. torchvision's ImageNet ResNet-34 for L1-norm pruning): find torchvision's in the
local torch hub cache (never downloading), read safely, check fit."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch

from rethink.arch import ArchSpec, build
from rethink.errors import UserError

_PREFIXES = ("module.", "model.")  # DataParallel and LightningModule wrappers
_BN_COUNTER = ".num_batches_tracked"  # absent from BatchNorm state saved by PyTorch < 0.4.1

TORCHVISION = "torchvision"  # pretrain.weights=torchvision: torchvision's ImageNet weights of the model
# Our model -> the torchvision builder of the same architecture and parameter names (tests/test_torchvision_weights.py
# checks equal outputs), and the model options that make it so (vgg11_bn's default classifier is slimming's, with
# BatchNorm1d layers torchvision's has not).
TORCHVISION_BUILDERS = {
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "vgg11_bn": "vgg11_bn",
    "vgg16_bn": "vgg16_bn",
    "vgg16_imagenet": "vgg16",
}
TORCHVISION_OPTIONS = {"vgg11_bn": {"classifier": "torchvision"}}


def torchvision_file(model_name: str) -> Path:
    """Where ``torch.hub`` keeps torchvision's ``IMAGENET1K_V1`` weights of ``model_name`` (the file name of the
    weights' URL under ``torch.hub.get_dir()/checkpoints``, as torchvision saves it); nothing is downloaded."""
    builder = TORCHVISION_BUILDERS.get(model_name)
    if builder is None:
        available = ", ".join(f"{ours} ({theirs})" for ours, theirs in TORCHVISION_BUILDERS.items())
        raise UserError(
            f"pretrain.weights=torchvision: model '{model_name}' has no torchvision counterpart with the same "
            f"architecture; the models that have one are {available}. Give pretrain.weights the path of a "
            "state_dict of this model, or null to train it."
        )
    from torchvision.models import get_model_weights

    url = get_model_weights(builder).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def torchvision_fetch_hint(model_name: str, path: Path) -> str:
    """How to put torchvision's weights of ``model_name`` at ``path`` (its expected place in the hub cache)."""
    builder = TORCHVISION_BUILDERS[model_name]
    return (
        f"pretrain.weights=torchvision: torchvision's ImageNet weights of model '{model_name}' "
        f"(torchvision.models.{builder}, IMAGENET1K_V1) are "
        f"not in the torch hub cache: expected {path}. rethink never downloads them. On a machine with internet, run "
        f"python -c \"import torchvision; torchvision.models.{builder}(weights='IMAGENET1K_V1')\" (it saves "
        f"{path.name} under $TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints) and copy that file "
        f"to {path}, or set TORCH_HOME to a folder holding hub/checkpoints/{path.name}; or give pretrain.weights the "
        "file's path."
    )


def _read(path: Path) -> object:
    """The tensors of a torch file (``weights_only``) or of a ``.safetensors`` file (timm's hub weights)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(path: str | Path, spec: ArchSpec, model_name: str) -> dict[str, torch.Tensor]:
    """A state_dict (or a checkpoint holding one under ``state_dict``) that loads strictly into ``build(spec)``.

    BatchNorm ``num_batches_tracked`` counters missing from the file (older torchvision weights) are filled with
    zeros, a fresh layer's value (used only by BN with ``momentum=None``); any other missing key is refused."""
    fix = "Give pretrain.weights a state_dict saved with torch.save(model.state_dict(), path) for this model."
    try:
        obj = _read(Path(path))
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
