"""Checks that turn a cell's settings into its specs and pruner before any data is read: the model fits the data
set, the pruner fits the model's family and settings, a data-driven pruner's calibration data and the global batch
fit. Each raises :class:`UserError` naming the bad value and the fix."""

from __future__ import annotations

import math
from typing import NamedTuple

from rethink.arch import MODELS, ArchSpec, UnknownModelError, default_spec, family_of, model_info, spec_cost
from rethink.arch.family import DECLARATIONS
from rethink.distributed import planned_world_size, rank_batch_size
from rethink.errors import UserError
from rethink.pruning.context import CalibrationShape
from rethink.pruning.registry import Pruner, create
from rethink.settings.schema import Settings

DOMAIN_NAMES = {"cifar": "a CIFAR", "imagenet": "an ImageNet"}


def _models_for(size: int) -> str:
    """``e.g. model=resnet56``: the registered models for ``size`` x ``size`` inputs (the paper's first)."""
    fits = sorted((not n.startswith(("resnet", "vgg")), n) for n, info in MODELS.items() if info.input_size == size)
    if not fits:
        return f"or register one for {size}x{size} inputs (register_model(..., input_size={size}))"
    return "e.g. " + " or ".join(f"model={n}" for _, n in fits[:2])


def large_spec(settings: Settings) -> ArchSpec:
    name, dataset = settings.model.name, settings.dataset
    try:
        info = model_info(name)
    except UnknownModelError as exc:
        raise UserError(f"model.name: {exc}. Pick one with model=<name>.") from None
    size = dataset.image_size if info.input_size is None else info.input_size
    if size != dataset.image_size:
        raise UserError(
            f"model '{name}' is {DOMAIN_NAMES.get(info.domain, info.domain)} architecture for {size}x{size} inputs, "
            f"but dataset '{dataset.name}' has {dataset.image_size}x{dataset.image_size} images. Pick a model for "
            f"that input size, {_models_for(dataset.image_size)}."
        )
    try:
        spec = default_spec(name, dataset.num_classes, **settings.model.options)
    except (TypeError, ValueError) as exc:
        message = str(exc) if str(exc).startswith(f"model '{name}'") else f"model '{name}': {exc}"
        raise UserError(f"{message}. Fix the model.* override (conf/model/{name}.yaml lists the options).") from None
    try:
        spec_cost(spec, size)  # every layer type has a FLOP rule (docs/protocol.md#flops)
    except ValueError as exc:
        raise UserError(f"model '{name}': {exc}") from None
    return spec


class ConfiguredPruner(NamedTuple):
    """A cell's pruner, checked against its model: the large spec it trains and its predefined target."""

    pruner: Pruner
    large: ArchSpec
    target: ArchSpec | None  # aligned by pruner.round_to; None when training decides
    requested: ArchSpec | None  # the target before that alignment


def configured_pruner(settings: Settings, large: ArchSpec) -> ConfiguredPruner:
    """The pruner for this model (checked against what its family declares), the large spec it trains, and its
    predefined target (None when training decides)."""
    pruner, model = create(settings.pruner, settings.model.name), settings.model.name
    missing = family_of(large).missing(pruner.requirements().family)
    if missing:
        what = "; ".join(f"{DECLARATIONS[m]} (Family.{m})" for m in missing)
        raise UserError(
            f"pruner={pruner.name} cannot prune model '{model}': its family '{large.family}' does not declare {what}, "
            f"which {pruner.name} needs. Declare it in the family's module, or pick another pruner."
        )
    try:
        pruner.check(large)
        prepared = pruner.prepare(large)
        if not pruner.requirements().predefined_target:
            return ConfiguredPruner(pruner, prepared, None, None)
        requested = pruner.target(prepared)
        return ConfiguredPruner(pruner, prepared, pruner.align(prepared, requested), requested)
    except ValueError as exc:
        raise UserError(f"pruner={pruner.name} with model '{model}': {exc}. Fix the pruner.* overrides.") from None


def check_calibration(settings: Settings, pruner: Pruner, large: ArchSpec, target: ArchSpec | None) -> None:
    """A data-driven pruner's calibration data checked against its needs, before any training."""
    if not pruner.requirements().calibration:
        return
    dataset, calibration = settings.dataset, settings.calibration
    images = calibration.images(dataset.batch_size, dataset.num_classes)
    batches = calibration.batches if calibration.images_per_class is None else math.ceil(images / dataset.batch_size)
    shape = CalibrationShape(batches, dataset.batch_size, dataset.image_size, images)
    try:
        pruner.check_data(large, target, shape)
    except ValueError as exc:
        raise UserError(f"pruner={pruner.name} with model '{settings.model.name}': {exc}") from None


def check_global_batch(settings: Settings) -> None:
    """``dataset.batch_size`` is the global batch: it must split evenly over the planned processes (checked again
    by the data module once Lightning knows the world size)."""
    world = planned_world_size(settings.trainer.arguments)
    if world is not None:
        rank_batch_size(settings.dataset.batch_size, world)
