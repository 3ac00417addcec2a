"""Architectures: every model is built from an :class:`ArchSpec`."""

from rethink.arch.registry import INPUT_SIZE, MODELS, ModelInfo, UnknownModelError, build, default_spec, model_info
from rethink.arch.spec import ArchSpec

__all__ = ["ArchSpec", "INPUT_SIZE", "MODELS", "ModelInfo", "UnknownModelError", "build", "default_spec", "model_info"]
