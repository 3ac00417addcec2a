"""Architectures: every model is built from an :class:`ArchSpec`; each family module registers itself on import.

The public names are bound before the family modules are imported, so a family module — in this package or a user's
— may import them from ``rethink.arch`` as the extending guide does."""

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

from rethink.arch import (  # noqa: E402, F401  (each family module registers itself; after the names above)
    cifar_densenet,
    cifar_preresnet,
    cifar_resnet,
    cifar_vgg,
    graph,
    imagenet_preresnet,
    imagenet_resnet,
    imagenet_vgg,
)
