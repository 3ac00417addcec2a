"""Families and named models, registered by their own modules: ``register_family`` and ``register_model``.

A model name (``model=resnet56``) maps to its input domain (and so its input size) and the function making its
unpruned spec; a spec's
family maps to its builder and structure declarations (:class:`rethink.arch.family.Family`). Registering a model
from Python also offers it as a config option (``model=<name>``) when no ``conf/model/<name>.yaml`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import torch
from torch import nn

from rethink.arch.cost import Cost, count_cost, register_layer_cost
from rethink.arch.family import Family
from rethink.arch.spec import ArchSpec
from rethink.options import offer_option

# the input size of the paper's domains; a model of another domain states its own (register_model's input_size)
INPUT_SIZE = {"cifar": 32, "imagenet": 224}


@dataclass(frozen=True)
class ModelInfo:
    """A named architecture: its input domain and size, and the function making its unpruned spec."""

    name: str
    domain: str  # "cifar" (32x32 inputs), "imagenet" (224x224 inputs), "any" or a domain of the model's own
    make_spec: Callable[..., ArchSpec]  # (num_classes, **options) -> ArchSpec
    description: str
    input_size: int | None  # the side of the square images it is built for; None (domain "any"): the data set's
    label: Callable[[Mapping[str, Any]], str] | None = None  # its name in cell labels, from its options

    def cell_label(self, options: Mapping[str, Any]) -> str:
        """How a cell names this model: ``resnet56``; a model family of many architectures names the one chosen
        (``torchvision.resnet18``)."""
        return self.name if self.label is None else self.label(options)


FAMILIES: dict[str, Family] = {}
MODELS: dict[str, ModelInfo] = {}


class UnknownModelError(ValueError):
    """Raised for a model or family name that does not exist."""


def register_family(family: Family) -> Family:
    """Make specs of ``family.name`` buildable, and its layer cost rules known to the counter."""
    FAMILIES[family.name] = family
    for layer_type, rule in family.layer_costs.items():
        register_layer_cost(layer_type, rule)
    return family


def register_model(
    name: str,
    domain: str,
    make_spec: Callable[..., ArchSpec],
    description: str,
    options: Mapping[str, Any] | None = None,
    input_size: int | None = None,
    label: Callable[[Mapping[str, Any]], str] | None = None,
) -> ModelInfo:
    """Register model ``name``; ``options`` (its default options) also offer it as the config option ``model=name``.
    ``input_size``: the image side it is built for (default: its domain's, for ``cifar`` and ``imagenet``; domain
    ``any``: None, built for the data set's images). ``label``: its name in cell labels, from its options."""
    size = input_size if input_size is not None else INPUT_SIZE.get(domain)
    any_size = domain == "any" and input_size is None
    if not any_size and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValueError(
            f"model '{name}': domain {domain!r} has no known input size; give register_model(..., input_size=<pixels>) "
            f"(known domains: {', '.join(f'{d} {s}' for d, s in INPUT_SIZE.items())})"
        )
    info = MODELS[name] = ModelInfo(name, domain, make_spec, description, size, label)
    if options is not None:
        offer_option("model", name, {"name": name, **options})
    return info


def model_info(name: str) -> ModelInfo:
    """The registered model called ``name``, or a clear error listing the accepted names."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model '{name}'; accepted: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def default_spec(name: str, num_classes: int, **options: Any) -> ArchSpec:
    """The unpruned spec of model ``name`` for ``num_classes`` classes (options from ``conf/model``)."""
    return model_info(name).make_spec(num_classes, **options)


def family_of(spec: ArchSpec) -> Family:
    """The registered family of ``spec``."""
    if spec.family not in FAMILIES:
        raise UnknownModelError(f"unknown architecture family '{spec.family}'; accepted: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[spec.family]


def build(spec: ArchSpec) -> nn.Module:
    """Build a freshly initialised model from its spec (seed torch first for reproducibility)."""
    return family_of(spec).build(spec)


def spec_cost(spec: ArchSpec, input_size: int) -> Cost:
    """Dense cost of the model described by ``spec``, built on the meta device (no memory); cached."""
    return _cached_spec_cost(spec.to_json(), input_size)


def model_cost(spec: ArchSpec, model: nn.Module, input_size: int, sparse: bool = False) -> Cost:
    """Cost of ``model`` (a model of ``spec``) by its family's counter (the paper's unless it declares another);
    ``sparse``: zero conv weights cost nothing."""
    count = family_of(spec).count
    return count_cost(model, input_size, sparse) if count is None else count(model, input_size, sparse)


@lru_cache(maxsize=256)
def _cached_spec_cost(spec_json: str, input_size: int) -> Cost:
    spec = ArchSpec.from_json(spec_json)
    with torch.device("meta"):
        model = build(spec)
    return model_cost(spec, model, input_size)
