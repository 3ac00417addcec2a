"""The name of a pruned setting — ``A``, ``70%``, ``30% (scope=layer)`` — from what a run asked for: the rows of the
report's tables, the published numbers' keys and the W&B group of a cell all use it; ``slug`` makes file names.

Everything the results side knows about particular pruners sits here, in the section marked *pruner-specific*: the
report's tables (order and titles), the setting that names a pruned row, and which pruners prune weights (not
channels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

NO_PRUNER = "none"  # the pruner of an unpruned model (conf/pruner/none.yaml)

# ------------------------------------------------------------------------------------------------ pruner-specific


def _effective_ratio(requested: dict[str, Any]) -> float | None:
    rounds, round_ratio = requested.get("rounds") or 1, requested.get("round_ratio")
    if rounds > 1 and round_ratio is not None:
        return round(1 - (1 - float(round_ratio)) ** rounds, 4)
    return None if requested.get("ratio") is None else float(requested["ratio"])


def _channel_setting(req: dict[str, Any]) -> dict[str, Any]:
    """Predefined channel targets (L1-norm, random, SSS): the paper's variant, else the custom targets."""
    if req.get("variant"):
        return {"variant": str(req["variant"])}
    keep = ("stage_ratios", "layer_ratios", "skip", "gamma", "threshold")
    return {k: req[k] for k in keep if req.get(k) not in (None, [], {})}


def _magnitude_setting(req: dict[str, Any]) -> dict[str, Any]:
    """Weight pruning: the effective ratio (over all rounds), a non-global scope and the rounds."""
    out: dict[str, Any] = {"ratio": _effective_ratio(req)}
    if req.get("scope", "global") != "global":
        out["scope"] = req["scope"]
    if (req.get("rounds") or 1) > 1:
        out["rounds"] = req["rounds"]
    return out


def _slimming_setting(req: dict[str, Any]) -> dict[str, Any]:
    """Network slimming: the global channel ratio and a non-default sparsity penalty."""
    out = {"ratio": req.get("ratio")}
    if req.get("sparsity") is not None:
        out["sparsity"] = req["sparsity"]
    return out


def _uniform_setting(req: dict[str, Any]) -> dict[str, Any]:
    """Uniform channel pruning: its ratio, or the run whose channel count it matches (its directory name)."""
    if req.get("ratio") is not None:
        return {"ratio": req["ratio"]}
    return {"reference": Path(str(req.get("reference"))).parent.name or str(req.get("reference"))}


def _other_setting(req: dict[str, Any]) -> dict[str, Any]:
    """Any other pruner: every requested setting but the fallbacks."""
    skip = ("default_sparsity", "fallback_sparsity", "min_channels", "on_empty")
    return {k: v for k, v in req.items() if k not in skip and v not in (None, [], {})}


# pruner-specific: to be read from the pruner registry
SETTING_RULES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "l1": _channel_setting,
    "random": _channel_setting,
    "sss": _channel_setting,
    "magnitude": _magnitude_setting,
    "slimming": _slimming_setting,
    "uniform": _uniform_setting,
}

# pruner-specific: to be read from the pruner registry
PRUNER_TABLES = {  # the report's table of each pruner, in report order: its title
    "l1": "L1-norm filter pruning (Li et al., 2017)",
    "random": "Random channel pruning (control)",
    "slimming": "Network Slimming (Liu et al., 2017)",
    "uniform": "Uniform channel pruning (control of Figure 3)",
    "sss": "Sparse Structure Selection (Huang & Wang, 2018)",
    "magnitude": "Non-structured weight pruning (Han et al., 2015)",
}

# pruner-specific: to be read from the pruner registry
WEIGHT_LEVEL_PRUNERS = ("magnitude",)  # prune weights, not channels: per-layer sparsity plots, not widths


def pruner_setting_rule(pruner: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function from a pruner's requested settings to the setting that names its rows."""
    return SETTING_RULES.get(pruner, _other_setting)


def pruner_table_order() -> tuple[str, ...]:
    """The pruners whose tables come first in a report, in that order (other pruners follow, sorted by name)."""
    return tuple(PRUNER_TABLES)


def pruner_table_title(pruner: str) -> str:
    """The title of a pruner's table: the paper's method, or ``Pruner NAME`` for one the paper has no table of."""
    return PRUNER_TABLES.get(pruner, f"Pruner {pruner}")


def prunes_weights(pruner: str) -> bool:
    """Whether ``pruner`` zeroes weights (a per-layer sparsity) rather than removing channels (per-layer widths)."""
    return pruner in WEIGHT_LEVEL_PRUNERS


# ------------------------------------------------------------------------------------------------ settings


def requested_settings(result: dict[str, Any]) -> dict[str, Any]:
    """The pruner settings a run asked for (``pruning.requested``, else the config's pruner group)."""
    pruning = result.get("pruning") or {}
    if isinstance(pruning.get("requested"), dict):
        return pruning["requested"]
    pruner = ((result.get("config") or {}).get("pruner")) or {}
    return {k: v for k, v in pruner.items() if k != "name"}


def pruned_setting(result: dict[str, Any]) -> dict[str, Any]:
    """The setting that names a row (and keys the published numbers): ``{"variant": "A"}``, ``{"ratio": 0.7}``, ...
    Settings that are not the paper's (custom ratios, a non-global magnitude scope) are kept so rows never merge."""
    return pruner_setting_rule(result["cell"]["pruner"])(requested_settings(result))


def setting_label(setting: dict[str, Any]) -> str:
    """``A``, ``70%``, ``30% (scope=layer)``: the "pruned" column of a row."""
    if not setting:
        return "-"
    parts, extra = [], []
    for name, value in setting.items():
        if name == "variant":
            parts.append(str(value))
        elif name == "ratio" and isinstance(value, (int, float)):
            parts.append(f"{100 * value:g}%")
        else:
            extra.append(f"{name}={value}")
    if not parts:
        return ", ".join(extra)
    return " ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def cell_group(cell: dict[str, Any], pruner: dict[str, Any]) -> str:
    """``cifar10/resnet56/l1 A/scratch_b``: one cell of a paper table (its seeds are the runs of the group), from the
    cell and its pruner config."""
    if cell["pruner"] == NO_PRUNER:
        return f"{cell['dataset']}/{cell['model']}/none/{cell['schedule']}"
    label = setting_label(pruned_setting({"cell": cell, "config": {"pruner": pruner}}))
    return f"{cell['dataset']}/{cell['model']}/{cell['pruner']} {label}/{cell['schedule']}"


def slug(text: str) -> str:
    """``l1_cifar10_vgg16_A``: ``text`` as a file name (letters, digits, ``-_.``; anything else as one ``_``)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return "_".join(filter(None, keep.split("_")))
