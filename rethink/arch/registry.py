"""Name -> architecture lookup: model names (as used in ``conf/model``) and family builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from rethink.arch import cifar_models, imagenet_models
from rethink.arch.spec import ArchSpec


@dataclass(frozen=True)
class ModelInfo:
    """A named architecture: its input domain and the function making its unpruned spec."""

    name: str
    domain: str  # "cifar" (32x32 inputs) or "imagenet" (224x224 inputs)
    make_spec: Callable[..., ArchSpec]  # (num_classes, **options) -> ArchSpec
    description: str


INPUT_SIZE = {"cifar": 32, "imagenet": 224}

FAMILIES: dict[str, Callable[[ArchSpec], nn.Module]] = {**cifar_models.FAMILIES, **imagenet_models.FAMILIES}
MODELS: dict[str, ModelInfo] = {
    name: ModelInfo(name, domain, make_spec, description)
    for table in (cifar_models.MODELS, imagenet_models.MODELS)
    for name, (domain, make_spec, description) in table.items()
}


class UnknownModelError(ValueError):
    """Raised for a model or family name that does not exist."""


def model_info(name: str) -> ModelInfo:
    """The registered model called ``name``, or a clear error listing the accepted names."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model '{name}'; accepted: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def default_spec(name: str, num_classes: int, **options: Any) -> ArchSpec:
    """The unpruned spec of model ``name`` for ``num_classes`` classes (options from ``conf/model``)."""
    return model_info(name).make_spec(num_classes, **options)


def build(spec: ArchSpec) -> nn.Module:
    """Build a freshly initialised model from its spec (seed torch first for reproducibility)."""
    if spec.family not in FAMILIES:
        raise UnknownModelError(f"unknown architecture family '{spec.family}'; accepted: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[spec.family](spec)
