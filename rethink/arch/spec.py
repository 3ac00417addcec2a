"""`ArchSpec`: the JSON-serialisable description every model is built from (the contract between stages)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArchSpec:
    """A model as data: its family, class count and explicit per-layer widths.

    ``config`` holds the family-specific fields (width lists, skip/selection data, initialisation options);
    it must contain only JSON types so that ``from_json(to_json(spec)) == spec``.
    """

    family: str
    num_classes: int
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", _plain(self.config))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON types only)."""
        return {"family": self.family, "num_classes": self.num_classes, "config": _plain(self.config)}

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys), stable enough to hash."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        """Inverse of :meth:`to_dict`."""
        return cls(family=str(data["family"]), num_classes=int(data["num_classes"]), config=dict(data["config"]))

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def replace_config(self, **changes: Any) -> "ArchSpec":
        """A copy with some config fields changed (e.g. pruned widths)."""
        return ArchSpec(self.family, self.num_classes, {**self.config, **changes})


def _plain(value: Any) -> Any:
    """Convert tuples to lists recursively so JSON round-trips compare equal."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
