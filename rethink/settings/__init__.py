"""Typed, immutable settings (:class:`rethink.settings.schema.Settings`): the composed config is validated once, at
entry (:func:`rethink.pipeline.config.load_settings`), and the rest of the code receives them, never the raw
``DictConfig``. :func:`parse` types one group against its schema."""

from rethink.settings.typed import parse

__all__ = ["parse"]
