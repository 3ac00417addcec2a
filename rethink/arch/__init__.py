"""Architectures: every model is built from an :class:`ArchSpec`; each family module registers itself on import."""

from rethink.arch import (  # noqa: F401  (each family module registers itself)
    cifar_densenet,
    cifar_preresnet,
    cifar_resnet,
    cifar_vgg,
    imagenet_resnet,
    imagenet_vgg,
)
from rethink.arch.family import Family
from rethink.arch.registry import (
    FAMILIES,
    INPUT_SIZE,
    MODELS,
    ModelInfo,
    UnknownModelError,
    build,
    default_spec,
    family_of,
    model_info,
    register_family,
    register_model,
    spec_cost,
)
from rethink.arch.spec import ArchSpec

__all__ = [
    "ArchSpec",
    "FAMILIES",
    "Family",
    "INPUT_SIZE",
    "MODELS",
    "ModelInfo",
    "UnknownModelError",
    "build",
    "default_spec",
    "family_of",
    "model_info",
    "register_family",
    "register_model",
    "spec_cost",
]
