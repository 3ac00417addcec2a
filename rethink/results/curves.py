"""The paper's Figure 3 in the report: parameter-efficiency curves and the kept ratio of each stage.

A result's method is its pruner's :class:`~rethink.pruning.Curve` (kind: channels | weights; role: automatic,
uniform, guided, transferred guided); results whose pruner has none are left out.

- ``curves_<dataset>_<model>_<kind>_<schedule>.png``: test top-1 at the report's metric (mean ± std over seeds)
  against parameters, one curve per method, one point per prune setting (a row of the pruner's table), and the
  unpruned model. One figure per retraining schedule: methods are compared trained the same way (the paper's
  Figure 3 trains all from scratch), and a method whose architecture is fixed before training (uniform, guided) has
  no fine-tuned point anyway.
- ``stage_ratios_<dataset>_<model>_<kind>.png``: the kept fraction of each stage (feature-map size, largest first)
  for every method and prune setting, mean over seeds (``pruning.stage_ratios``; results without it are skipped).
  A seed counts once: the schedules of one seed share its pruned architecture.

Each figure's data is written beside it as ``<stem>.json`` (to test and to re-plot).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from rethink.pruning import Curve, lookup
from rethink.pruning.naming import requested_settings, slug
from rethink.results import meta
from rethink.results.files import top1
from rethink.results.plots import large_params, new_figure, save_figure
from rethink.results.tables import (
    METRIC_NAMES,
    UNPRUNED_TABLE,
    Row,
    Table,
    column_title,
)

CURVES_SIZE = (800, 500)  # pixels
STAGES_SIZE = (800, 450)
PREFIXES = ("curves_", "stage_ratios_")
SECTION = "Parameter efficiency (Figure 3)"
ROLE_ORDER = {"automatic": 0, "uniform": 1, "guided": 2, "transferred guided": 3}


def method(result: dict[str, Any]) -> tuple[Curve, str] | None:
    """The result's Figure 3 curve and its legend label (``automatic — <pruner title>``, ``uniform``, ``guided``,
    ``transferred guided (<model>/<dataset>)``), or None when its pruner has no curve. Uniform points matched to
    different decisions are one curve (each point one uniform width; ``matched`` in its data says whose params)."""
    cls = lookup(result["cell"]["pruner"])
    requested = requested_settings(result)
    curve = cls.curve(requested) if cls is not None else None
    if curve is None:
        return None
    label = curve.role
    if curve.role == "automatic":
        label += f" — {cls.title or cls.name}"
    elif curve.role == "transferred guided":
        source = requested.get("source") or {}
        label += f" (from {'/'.join(str(source[k]) for k in ('model', 'dataset') if source.get(k) is not None)})"
    return curve, label


def _model_key(row: Row) -> tuple[str, str, str]:
    return row.dataset, row.model, json.dumps(row.options, sort_keys=True)


def _by_seed(results: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The first result of each seed (a later duplicate is the tables' business: they note it)."""
    out: dict[int, dict[str, Any]] = {}
    for result in results:
        out.setdefault(result["cell"]["seed"], result)
    return out


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def _point(row: Row, results: list[dict[str, Any]], curve: Curve, metric: str) -> dict[str, Any] | None:
    seeds = _by_seed(results)
    params = [r["params"] for r in seeds.values() if isinstance(r.get("params"), (int, float))]
    if not params:
        return None
    accs = [top1(r["accuracy"], metric)[0] for r in seeds.values()]
    point = {"setting": row.label, "pruner": row.table, "level": curve.level, "matched": curve.matched}
    point["params"] = statistics.mean(params)
    return {**point, **_stats(accs), "seeds": sorted(seeds)}


def _unpruned(tables: list[Table]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The unpruned model of each (dataset, model, options): its ``schedule=baseline`` runs, else the pruned rows'
    Unpruned column at the parameter count their pruned fractions imply."""
    baseline: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    pretrained: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for table in tables:
        for row in table.rows:
            if row.cells.get("unpruned") and row.cells["unpruned"].values:
                (baseline if row.table == UNPRUNED_TABLE else pretrained)[_model_key(row)].append(row)
    out = {}
    for key in baseline.keys() | pretrained.keys():
        if key in baseline:
            rows = baseline[key]
            params = [r["params"] for row in rows for r in row.results if isinstance(r.get("params"), (int, float))]
        else:
            rows = pretrained[key]
            params = [p for row in rows for p in map(large_params, row.results) if p]
        values: dict[int, float] = {}
        for row in rows:
            for seed, value in row.cells["unpruned"].values.items():
                values.setdefault(seed, value)
        if params:
            out[key] = {"params": statistics.mean(params), **_stats(list(values.values()))}
    return out


def curve_data(tables: list[Table]) -> list[dict[str, Any]]:
    """The data of every curves figure: per (dataset, model, kind, schedule), its curves with their points sorted by
    parameters, and the unpruned model (or None)."""
    figures: dict[tuple, dict[str, Any]] = {}
    unpruned = _unpruned(tables)
    for table in tables:
        for row in table.rows:
            groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            curves: dict[str, Curve] = {}
            for result in row.results:
                found = method(result)
                if found is not None:
                    schedule = result["cell"]["schedule"]
                    label = found[1] + (f" ({row.settings_label})" if row.settings_label else "")
                    groups[(schedule, label)].append(result)
                    curves[label] = found[0]
            for (schedule, label), results in groups.items():
                point = _point(row, results, curves[label], table.metric)
                if point is None:
                    continue
                key = (*_model_key(row), curves[label].kind, schedule)
                figure = figures.setdefault(
                    key,
                    {
                        "dataset": row.dataset,
                        "model": row.model_label or row.model,
                        "kind": curves[label].kind,
                        "schedule": schedule,
                        "metric": table.metric,
                        "curves": {},
                        "unpruned": unpruned.get(_model_key(row)),
                    },
                )
                entry = figure["curves"].setdefault(label, {"label": label, "role": curves[label].role, "points": []})
                entry["points"].append(point)
    out = []
    for figure in figures.values():
        for entry in figure["curves"].values():
            entry["points"].sort(key=lambda p: p["params"])
        figure["curves"] = sorted(figure["curves"].values(), key=lambda c: (ROLE_ORDER.get(c["role"], 9), c["label"]))
        out.append(figure)
    return out


def _stage_kept(result: dict[str, Any]) -> dict[int, float] | None:
    """``pruning.stage_ratios`` as feature-map size -> kept fraction, or None when the result has none."""
    ratios = (result.get("pruning") or {}).get("stage_ratios")
    if not isinstance(ratios, dict):
        return None
    sizes, kept = ratios.get("sizes"), ratios.get("kept")
    if not isinstance(sizes, list) or not isinstance(kept, list) or not sizes or len(sizes) != len(kept):
        return None
    return {int(size): float(value) for size, value in zip(sizes, kept)}


def stage_data(tables: list[Table]) -> list[dict[str, Any]]:
    """The data of every stage-ratio figure: per (dataset, model, kind), a line per method and prune setting with the
    mean kept fraction of each stage over its seeds; ``sizes`` are the figure's stages, largest first."""
    figures: dict[tuple, dict[str, Any]] = {}
    for table in tables:
        for row in table.rows:
            lines: dict[str, tuple[Curve, dict[int, dict[int, float]]]] = {}
            for result in row.results:
                kept, found = _stage_kept(result), method(result)
                if kept is not None and found is not None:
                    lines.setdefault(found[1], (found[0], {}))[1].setdefault(result["cell"]["seed"], kept)
            for label, (curve, seeds) in lines.items():
                key = (*_model_key(row), curve.kind)
                model = row.model_label or row.model
                figure = figures.setdefault(key, {"dataset": row.dataset, "model": model, "kind": curve.kind})
                sizes = sorted({size for kept in seeds.values() for size in kept}, reverse=True)
                figure.setdefault("lines", []).append(
                    {
                        "label": f"{label} {row.label}",
                        "method": label,
                        "role": curve.role,
                        "setting": row.label,
                        "level": curve.level,
                        "sizes": sizes,
                        "kept": [statistics.mean(k[size] for k in seeds.values() if size in k) for size in sizes],
                        "n": len(seeds),
                        "seeds": sorted(seeds),
                    }
                )
    for figure in figures.values():
        figure["sizes"] = sorted({size for line in figure["lines"] for size in line["sizes"]}, reverse=True)
        figure["lines"].sort(key=lambda line: (ROLE_ORDER.get(line["role"], 9), line["method"], line["setting"]))
    return list(figures.values())


def _plot_curves(figure: dict[str, Any], path: Path) -> Path:
    fig, ax = new_figure(CURVES_SIZE)
    for curve in figure["curves"]:
        points = curve["points"]
        params, means = [p["params"] for p in points], [p["mean"] for p in points]
        stds = [p["std"] or 0.0 for p in points]
        ax.errorbar(params, means, yerr=stds, marker="o", ms=4, capsize=2, label=curve["label"])
    reference = figure["unpruned"]
    if reference:
        ax.axhline(reference["mean"], color="k", ls="--", lw=0.8)
        std = [reference["std"] or 0.0]
        ax.errorbar([reference["params"]], [reference["mean"]], yerr=std, fmt="k*", ms=9, capsize=2, label="unpruned")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"test top-1 accuracy (%), {METRIC_NAMES[figure['metric']]}")
    title = f"{figure['dataset']} {figure['model']}: {figure['kind']} pruned, {column_title(figure['schedule'])}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _plot_stages(figure: dict[str, Any], path: Path) -> Path:
    fig, ax = new_figure(STAGES_SIZE)
    sizes, colors, markers = figure["sizes"], {}, "osD^v<>p"
    for i, line in enumerate(figure["lines"]):
        color = colors.setdefault(line["method"], f"C{len(colors) % 10}")
        x = [sizes.index(size) for size in line["sizes"]]
        label = f"{line['label']} (n={line['n']})"
        ax.plot(x, line["kept"], color=color, marker=markers[i % len(markers)], lw=1, label=label)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{size}×{size}" for size in sizes])
    ax.set_xlabel("stage (feature-map size)")
    ax.set_ylabel(f"kept fraction of {figure['kind']}")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{figure['dataset']} {figure['model']}: {figure['kind']} kept per stage", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _order(figure: dict[str, Any]) -> tuple:
    schedule = figure.get("schedule", "")
    dataset = figure["dataset"]
    return meta.dataset_order(dataset), dataset, figure["model"], figure["kind"], meta.schedule_order(schedule)


def figure3_plots(tables: list[Table], out: Path) -> list[tuple[str, Path]]:
    """Write the curves and stage-ratio figures of ``tables`` (PNG, and their data as JSON) under ``out``; returns
    (title, PNG path) pairs."""
    written = []
    for figure in sorted(curve_data(tables), key=_order):
        stem = slug(f"curves_{figure['dataset']}_{figure['model']}_{figure['kind']}_{figure['schedule']}")
        title = f"Parameter efficiency: {figure['dataset']} {figure['model']}, {figure['kind']}, "
        written.append((title + column_title(figure["schedule"]), _write(figure, out, stem, _plot_curves)))
    for figure in sorted(stage_data(tables), key=_order):
        stem = slug(f"stage_ratios_{figure['dataset']}_{figure['model']}_{figure['kind']}")
        title = f"Kept fraction per stage: {figure['dataset']} {figure['model']}, {figure['kind']}"
        written.append((title, _write(figure, out, stem, _plot_stages)))
    return written


def _write(figure: dict[str, Any], out: Path, stem: str, plot: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(figure, indent=1, ensure_ascii=False) + "\n")
    return plot(figure, out / f"{stem}.png")


def section(plots: list[tuple[str, Path]], out: Path) -> list[str]:
    """The report's Figure 3 section: the figures among ``plots`` (title, path), or nothing without one."""
    found = [(title, path) for title, path in plots if path.name.startswith(PREFIXES)]
    if not found:
        return []
    intro = (
        "Test top-1 accuracy (mean ± std over seeds) against parameters, a curve per method (automatic: the pruner "
        "found the architecture; uniform: one fraction everywhere; guided: the per-stage ratios of an automatic one), "
        "a point per prune setting, one figure per retraining schedule; then the kept fraction of each stage. Each "
        "plot's data is the JSON file beside it."
    )
    return [f"## {SECTION}", "", intro, ""] + [f"![{t}]({p.relative_to(out).as_posix()})\n" for t, p in found]
