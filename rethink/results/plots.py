"""Report plots (PNG, matplotlib Agg): the paper's Figure 3 views.

- ``widths_*.png``: per-layer channel counts of a pruned architecture (mean over its runs) against the unpruned model
  and against uniform pruning with the same total channel count (one keep fraction for every layer).
- ``sparsity_*.png``: per-layer weight sparsity of a magnitude-pruned model (``pruning.sparsity.layers``) against
  uniform sparsification at the same total sparsity; skipped when the results carry no per-layer sparsity.
- ``accuracy_params_*.png``: final top-1 accuracy (mean ± std over seeds) against parameter count, one series per
  method (pruner and schedule), per data set and model, with the unpruned model.

Every figure has a fixed pixel size (``WIDTHS_SIZE``, ``ACCURACY_SIZE`` at ``DPI``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rethink.pruning.naming import prunes_weights, slug
from rethink.results import meta
from rethink.results.tables import UNPRUNED_TABLE, Row, Table

DPI = 100
WIDTHS_SIZE = (1000, 400)  # pixels
ACCURACY_SIZE = (800, 500)


def new_figure(size: tuple[int, int]) -> tuple[Any, Any]:
    return plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)


def save_figure(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays fixed
    plt.close(fig)
    return path


def _layer_ticks(ax: Any, names: list[str]) -> None:
    step = max(1, len(names) // 40)  # at most ~40 labels
    ticks = list(range(0, len(names), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=90, fontsize=6)


def widths_plot(row: Row, path: Path) -> Path | None:
    """Per-layer channels of ``row``'s pruned architecture vs unpruned and uniform; None without recorded widths."""
    before: dict[str, int] | None = None
    afters: list[dict[str, int]] = []
    for result in row.results:
        widths = (result.get("pruning") or {}).get("widths") or {}
        if isinstance(widths.get("before"), dict) and isinstance(widths.get("after"), dict) and widths["before"]:
            before = before or widths["before"]
            afters.append(widths["after"])
    if before is None or not afters:
        return None
    names = list(before)
    large = [before[n] for n in names]
    pruned = [statistics.mean(a.get(n, 0) for a in afters) for n in names]
    spread = [statistics.stdev([a.get(n, 0) for a in afters]) if len(afters) > 1 else 0.0 for n in names]
    keep = sum(pruned) / sum(large)
    uniform = [w * keep for w in large]
    fig, ax = new_figure(WIDTHS_SIZE)
    x = range(len(names))
    ax.bar(x, large, color="0.85", label="unpruned")
    ax.bar(
        x,
        pruned,
        yerr=spread if len(afters) > 1 else None,
        color="tab:blue",
        alpha=0.8,
        label=f"pruned ({len(afters)} run(s))",
    )
    ax.plot(x, uniform, color="tab:red", marker=".", lw=1, label=f"uniform (keep {100 * keep:.1f}% of every layer)")
    ax.set_ylabel("channels")
    ax.set_title(f"{row.dataset} {row.model_label} {row.table} {row.label}: channels per layer", fontsize=9)
    _layer_ticks(ax, names)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def sparsity_plot(row: Row, path: Path) -> Path | None:
    """Per-layer sparsity of a magnitude-pruned row vs uniform; None without ``pruning.sparsity.layers``."""
    reports = [((r.get("pruning") or {}).get("sparsity") or {}) for r in row.results]
    reports = [s for s in reports if isinstance(s.get("layers"), dict) and s["layers"]]
    if not reports:
        return None
    names = list(reports[0]["layers"])
    per_layer = [statistics.mean(float(s["layers"].get(n, {}).get("sparsity", 0.0)) for s in reports) for n in names]
    totals = [s.get("total") or {} for s in reports]
    if all("kept" in t and "total" in t for t in totals):
        total = 1 - sum(t["kept"] for t in totals) / max(1, sum(t["total"] for t in totals))
    else:
        kept = sum(s["layers"][n]["kept"] for s in reports for n in names)
        total = 1 - kept / max(1, sum(s["layers"][n]["total"] for s in reports for n in names))
    fig, ax = new_figure(WIDTHS_SIZE)
    x = range(len(names))
    ax.bar(x, [100 * v for v in per_layer], color="tab:blue", alpha=0.8, label=f"pruned ({len(reports)} run(s))")
    ax.axhline(100 * total, color="tab:red", lw=1, label=f"uniform ({100 * total:.1f}% in every layer)")
    ax.set_ylim(0, 100)
    ax.set_ylabel("weights pruned (%)")
    ax.set_title(f"{row.dataset} {row.model_label} {row.table} {row.label}: sparsity per layer", fontsize=9)
    _layer_ticks(ax, names)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def large_params(result: dict[str, Any]) -> float | None:
    fraction = ((result.get("pruning") or {}).get("achieved") or {}).get("params_pruned_fraction")
    if isinstance(fraction, (int, float)) and fraction < 1 and isinstance(result.get("params"), (int, float)):
        return result["params"] / (1 - fraction)
    return None


def accuracy_params_plot(dataset: str, model: str, rows: list[Row], path: Path) -> Path | None:
    """Accuracy vs parameters of every method on one (dataset, model); None when nothing has a parameter count."""
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    unpruned: list[tuple[float, float, float]] = []
    for row in rows:
        by_column: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for result in row.results:
            by_column[result["cell"]["schedule"]].append(result)
        for schedule, results in by_column.items():
            params = [r["params"] for r in results if isinstance(r.get("params"), (int, float))]
            accs = [float(r["accuracy"]["top1_final"]) for r in results]
            if not params:
                continue
            point = (statistics.mean(params), statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0)
            if meta.role(schedule) == "unpruned":
                unpruned.append(point)
            else:
                series[f"{row.table} {schedule}"].append(point)
        large = [p for p in map(large_params, row.results) if p]
        cell = row.cells.get("unpruned")
        if large and cell is not None and cell.values and row.table != UNPRUNED_TABLE:
            values = list(cell.values.values())
            unpruned.append(
                (statistics.mean(large), statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
            )
    if not series and not unpruned:
        return None
    fig, ax = new_figure(ACCURACY_SIZE)
    curves = [(label, sorted(points), {"marker": "o", "ms": 4}) for label, points in sorted(series.items())]
    curves += [("unpruned", unpruned, {"fmt": "k*", "ms": 9})] if unpruned else []
    for label, points, style in curves:  # points: (params, mean, std)
        params, means, stds = zip(*points)
        ax.errorbar(params, means, yerr=stds, capsize=2, label=label, **style)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{dataset} {model}: accuracy vs parameters", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def make_plots(tables: list[Table], out: Path) -> list[tuple[str, Path]]:
    """Every plot the tables support, as (title, path) pairs."""
    written: list[tuple[str, Path]] = []
    by_model: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for table in tables:
        for row in table.rows:
            by_model[(row.dataset, row.model_label)].append(row)
            if table.name == UNPRUNED_TABLE:
                continue
            stem = slug(f"{table.name}_{row.dataset}_{row.model_label}_{row.label}")
            title = f"{row.dataset} {row.model_label} {table.name} {row.label}"
            if prunes_weights(table.name):
                path = sparsity_plot(row, out / f"sparsity_{stem}.png")
                if path:
                    written.append((f"Per-layer sparsity: {title} vs uniform", path))
            else:
                path = widths_plot(row, out / f"widths_{stem}.png")
                if path:
                    written.append((f"Per-layer channels: {title} vs unpruned and uniform", path))
    for (dataset, model), rows in sorted(by_model.items()):
        path = accuracy_params_plot(dataset, model, rows, out / f"accuracy_params_{slug(dataset + '_' + model)}.png")
        if path:
            written.append((f"Accuracy vs parameters: {dataset} {model}", path))
    return written
