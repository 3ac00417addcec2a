"""The name of a pruned setting — ``A``, ``70%``, ``30% (scope=layer)`` — from what a run asked for: the rows of the
report's tables, the published numbers' keys and the W&B group of a cell all use it; ``slug`` makes file names."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _effective_ratio(requested: dict[str, Any]) -> float | None:
    rounds, round_ratio = requested.get("rounds") or 1, requested.get("round_ratio")
    if rounds > 1 and round_ratio is not None:
        return round(1 - (1 - float(round_ratio)) ** rounds, 4)
    return None if requested.get("ratio") is None else float(requested["ratio"])


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
    pruner, req = result["cell"]["pruner"], requested_settings(result)
    if pruner in ("l1", "random", "sss"):
        if req.get("variant"):
            return {"variant": str(req["variant"])}
        keep = ("stage_ratios", "layer_ratios", "skip", "gamma", "threshold")
        return {k: req[k] for k in keep if req.get(k) not in (None, [], {})}
    if pruner == "magnitude":
        out: dict[str, Any] = {"ratio": _effective_ratio(req)}
        if req.get("scope", "global") != "global":
            out["scope"] = req["scope"]
        if (req.get("rounds") or 1) > 1:
            out["rounds"] = req["rounds"]
        return out
    if pruner == "slimming":
        out = {"ratio": req.get("ratio")}
        if req.get("sparsity") is not None:
            out["sparsity"] = req["sparsity"]
        return out
    if pruner == "uniform":
        if req.get("ratio") is not None:
            return {"ratio": req["ratio"]}
        return {"reference": Path(str(req.get("reference"))).parent.name or str(req.get("reference"))}
    skip = ("default_sparsity", "fallback_sparsity", "min_channels", "on_empty")
    return {k: v for k, v in req.items() if k not in skip and v not in (None, [], {})}


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
    if cell["pruner"] == "none":
        return f"{cell['dataset']}/{cell['model']}/none/{cell['schedule']}"
    label = setting_label(pruned_setting({"cell": cell, "config": {"pruner": pruner}}))
    return f"{cell['dataset']}/{cell['model']}/{cell['pruner']} {label}/{cell['schedule']}"


def slug(text: str) -> str:
    """``l1_cifar10_vgg16_A``: ``text`` as a file name (letters, digits, ``-_.``; anything else as one ``_``)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return "_".join(filter(None, keep.split("_")))
