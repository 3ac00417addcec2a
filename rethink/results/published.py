"""The paper's published accuracies (``rethink/results/published.json``, transcribed from the authors' slides; its
``source`` key cites them) and the key a result is matched by: ``(dataset, model, pruner, setting, schedule)``.

``setting`` is ``{"variant": "A"}`` (L1-norm, SSS), ``{"ratio": 0.7}`` (slimming, magnitude) or ``{}`` for the unpruned
model of a table (schedule ``baseline``). An entry's ``model_options`` (e.g. slimming's VGG-19 ``head: linear``) must
equal the run's model config where the run records it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

DATA_FILE = "published.json"
# The paper's numbers are best-epoch test accuracies: the reference code keeps best_prec1 over all epochs.
METRIC = "best"


@dataclass(frozen=True)
class Published:
    """One published number: ``mean`` (and ``std`` where the slides give one) of the best-epoch top-1 accuracy (%)."""

    table: str
    dataset: str
    model: str
    pruner: str
    setting: tuple[tuple[str, Any], ...]
    schedule: str
    mean: float
    std: float | None = None
    model_options: tuple[tuple[str, Any], ...] = ()
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def text(self) -> str:
        """``93.09 ± 0.14``, or ``73.03`` where no std is published."""
        return f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"


def setting_key(setting: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A hashable, normalised setting: ratios as rounded floats, variants as strings."""
    out = []
    for name, value in sorted((setting or {}).items()):
        if name == "ratio":
            value = round(float(value), 4)
        elif name == "variant":
            value = str(value)
        out.append((name, value))
    return tuple(out)


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    """The raw data file (``entries``, ``params_pruned``, ``relative`` and its documentation keys)."""
    return json.loads(resources.files("rethink.results").joinpath(DATA_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def entries() -> tuple[Published, ...]:
    """Every published accuracy with an absolute value (ThiNet/regression differences are in ``load()["relative"]``)."""
    out = []
    for raw in load()["entries"]:
        out.append(
            Published(
                table=raw["table"],
                dataset=raw["dataset"],
                model=raw["model"],
                pruner=raw["pruner"],
                setting=setting_key(raw["setting"]),
                schedule=raw["schedule"],
                mean=float(raw["mean"]),
                std=None if raw.get("std") is None else float(raw["std"]),
                model_options=tuple(sorted((raw.get("model_options") or {}).items())),
                note=raw.get("note"),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class RelativePublished:
    """A published change (points of top-1) against the unpruned accuracy ``relative_to`` it was measured from."""

    table: str
    delta: float
    relative_to: float
    note: str | None = None

    def text(self) -> str:
        """``-1.23 vs 71.03``."""
        return f"{self.delta + 0.0:+.2f} vs {self.relative_to:.2f}"


def lookup_relative(
    dataset: str,
    model: str,
    pruner: str,
    setting: dict[str, Any] | None,
    schedule: str,
    model_options: dict[str, Any] | None = None,
) -> RelativePublished | None:
    """The published change for this key (ThiNet, regression), or None."""
    key = setting_key(setting)
    for raw in load()["relative"]:
        same = (raw["dataset"], raw["model"], raw["pruner"], setting_key(raw["setting"]), raw["schedule"])
        options = tuple(sorted((raw.get("model_options") or {}).items()))
        if same == (dataset, model, pruner, key, schedule) and options_match(options, model_options):
            return RelativePublished(raw["table"], float(raw["delta"]), float(raw["relative_to"]), raw.get("note"))
    return None


def options_match(entry_options: tuple[tuple[str, Any], ...], model_options: dict[str, Any] | None) -> bool:
    """Whether a run's model config (None: not recorded) has every model option a published entry requires."""
    if model_options is None:
        return True
    return all(model_options.get(name, value) == value for name, value in entry_options)


def lookup(
    dataset: str,
    model: str,
    pruner: str,
    setting: dict[str, Any] | tuple[tuple[str, Any], ...] | None,
    schedule: str,
    model_options: dict[str, Any] | None = None,
) -> Published | None:
    """The published number for this key, or None. ``model_options``: the run's model config (None: not checked)."""
    key = setting if isinstance(setting, tuple) else setting_key(setting)
    for entry in entries():
        if (entry.dataset, entry.model, entry.pruner, entry.setting, entry.schedule) == (
            dataset,
            model,
            pruner,
            key,
            schedule,
        ) and options_match(entry.model_options, model_options):
            return entry
    return None


def params_pruned_pct(dataset: str, model: str, pruner: str, setting: dict[str, Any] | tuple | None) -> float | None:
    """The published parameter reduction (%) of a pruned model (Table 1's "Pruned %"), or None."""
    key = setting if isinstance(setting, tuple) else setting_key(setting)
    for raw in load()["params_pruned"]:
        if (raw["dataset"], raw["model"], raw["pruner"], setting_key(raw["setting"])) == (dataset, model, pruner, key):
            return float(raw["params_pruned_pct"])
    return None
