"""Measured speed of pruned models (the JSON of ``benchmarks/pruned_speed.py``): reading and checking it
(:func:`load`), its Markdown table (:func:`to_markdown`), and the report's "measured speedup" column
(:func:`add_speed_column`, ``python -m rethink.report PATH... --speed pruned_speed.json``).

A report row gets the speedup of the benchmark's pruned model with the same identity — table (the pruner), data set,
model, model options and pruned setting (``{"variant": "B"}``, ``{"ratio": 0.5}``), exactly as the row is keyed — and
stays empty otherwise. The column is the training-step speedup (forward, loss, backward, SGD step at the benchmark's
batch) on each model's fastest path; a footnote names the machine and the batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rethink.errors import UserError
from rethink.results.render import Rendered
from rethink.results.tables import Row, Table

FORMAT = "rethink.pruned_speed/1"
MEASUREMENTS = ("latency_ms", "inference_ips", "train_ips")
SPEEDUP_PATHS = ("fp32", "fastest")
COLUMN = "measured speedup (train step)"
SHORT = {"channels_last": "cl", "channels_last+bf16": "cl+bf16"}


@dataclass(frozen=True)
class SpeedFile:
    """A checked benchmark JSON and the file it came from."""

    path: str
    data: dict[str, Any]

    @property
    def machine(self) -> str:
        described = self.data["machine"]
        count = described.get("torch_threads")
        threads = f", {count} thread{'s' * (count != 1)}" if described.get("device") == "cpu" else ""
        return f"{described['name']} ({described.get('device', '?')}{threads}, torch {described.get('torch', '?')})"

    def pruned(self) -> list[dict[str, Any]]:
        return [m for m in self.data["models"] if m["role"] == "pruned"]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _problem(data: Any) -> str | None:
    """What is wrong with a benchmark document, or None."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f'it is not a pruned-speed benchmark (expected "format": "{FORMAT}")'
    if not isinstance(data.get("machine"), dict) or not isinstance(data["machine"].get("name"), str):
        return "machine.name is missing"
    if not isinstance(data.get("models"), list) or not data["models"]:
        return "it has no models"
    names = {m.get("name") for m in data["models"] if isinstance(m, dict)}
    for index, model in enumerate(data["models"]):
        where = f"models[{index}]"
        if not isinstance(model, dict):
            return f"{where} is not an object"
        for key in ("name", "table", "dataset", "model", "pruner"):
            if not isinstance(model.get(key), str):
                return f"{where}.{key} is missing or not a string"
        for key in ("options", "setting", "paths", "fastest"):
            if not isinstance(model.get(key), dict):
                return f"{where} ({model['name']}).{key} is missing or not an object"
        for key in ("params", "flops", "batch"):
            if not _positive(model.get(key)):
                return f"{where} ({model['name']}).{key} is {model.get(key)!r}, not a positive number"
        fp32 = model["paths"].get("fp32")
        if not isinstance(fp32, dict) or not all(_positive((fp32.get(k) or {}).get("median")) for k in MEASUREMENTS):
            return f"{where} ({model['name']}).paths.fp32 lacks a positive median of {', '.join(MEASUREMENTS)}"
        if model.get("role") not in ("large", "pruned"):
            return f"{where} ({model['name']}).role is {model.get('role')!r}, not 'large' or 'pruned'"
        if model["role"] == "pruned":
            if model.get("large") not in names:
                return f"{where} ({model['name']}).large names no model of the file"
            speedup = model.get("speedup")
            complete = isinstance(speedup, dict) and all(
                isinstance(speedup.get(p), dict) and all(_positive(speedup[p].get(k)) for k in MEASUREMENTS)
                for p in SPEEDUP_PATHS
            )
            if not complete or not _positive(model.get("params_ratio")) or not _positive(model.get("flops_ratio")):
                return f"{where} ({model['name']}) lacks positive speedups (fp32, fastest) or ratios"
    return None


def load(path: str | Path) -> SpeedFile:
    """The benchmark JSON at ``path``, checked; :class:`UserError` naming what is wrong."""
    fix = "give a JSON written by benchmarks/pruned_speed.py --json"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"--speed {path}: cannot be read ({exc.strerror or exc}); {fix}.") from None
    except ValueError as exc:
        raise UserError(f"--speed {path}: not JSON ({exc}); {fix}.") from None
    problem = _problem(data)
    if problem:
        raise UserError(f"--speed {path}: {problem}; {fix}.")
    return SpeedFile(str(path), data)


def _key(table: str, dataset: str, model: str, options: dict[str, Any], setting: dict[str, Any]) -> str:
    return json.dumps([table, dataset, model, options, setting], sort_keys=True)


def match(speed: SpeedFile, row: Row) -> dict[str, Any] | None:
    """The benchmark's pruned model of ``row`` (same table, data set, model, model options and setting), or None."""
    wanted = _key(row.table, row.dataset, row.model, row.options, row.setting)
    for model in speed.pruned():
        if _key(model["table"], model["dataset"], model["model"], model["options"], model["setting"]) == wanted:
            return model
    return None


def add_speed_column(table: Table, rendered: Rendered, speed: SpeedFile) -> Rendered:
    """``rendered`` with the "measured speedup" column (empty where the benchmark has no model of the row) and a
    footnote naming the measurement and the machine; unchanged when no row matches."""
    found = [match(speed, row) for row in table.rows]
    if not any(found):
        return rendered
    rendered.header.append(COLUMN)
    batches = sorted({m["batch"] for m in found if m})
    for plain, marked, model in zip(rendered.rows, rendered.marked_rows, found):
        text = "" if model is None else f"{model['speedup']['fastest']['train_ips']:.2f}x"
        plain.append(text)
        marked.append(text)
    rendered.footnotes.append(
        f"{COLUMN}: training-step throughput (forward, cross-entropy, backward, SGD step) of the pruned model over the "
        f"large model's, at batch {', '.join(map(str, batches))}, each on its fastest path; measured on "
        f"{speed.machine} ({speed.path}, benchmarks/pruned_speed.py)"
    )
    return rendered


# ------------------------------------------------------------------------------------- the benchmark's table


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _count(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def to_markdown(speed: SpeedFile) -> str:
    """The benchmark as one Markdown table: speeds (fp32 / fastest path) and speedups beside the FLOPs and params
    ratios, then the machine, settings, notes and skipped models."""
    data = speed.data
    header = ["model", "batch", "params", "FLOPs", "params ratio", "FLOPs ratio"]
    header += ["latency ms (fp32 / fastest)", "inference img/s (fp32 / fastest)", "train img/s (fp32 / fastest)"]
    header += [
        "speedup latency (fp32 / fastest)",
        "speedup inference",
        "speedup train",
        "fastest paths (lat, inf, train)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    notes = []
    for model in data["models"]:
        pruned = model["role"] == "pruned"
        mark = ""
        if model.get("notes"):
            notes.append(f"{model['name']}: {'; '.join(model['notes'])}")
            mark = f" [{len(notes)}]"
        cells = [model["name"] + mark, str(model["batch"]), _count(model["params"]), _count(model["flops"])]
        cells += [f"{model['params_ratio']:.2f}", f"{model['flops_ratio']:.2f}"] if pruned else ["1", "1"]
        for key in MEASUREMENTS:
            cells.append(
                f"{_number(model['paths']['fp32'][key]['median'])} / {_number(model['fastest'][key]['median'])}"
            )
        for key in MEASUREMENTS:
            speedup = model.get("speedup") or {}
            cells.append(" / ".join(f"{speedup[p][key]:.2f}x" for p in SPEEDUP_PATHS) if pruned else "")
        cells.append(
            ", ".join(SHORT.get(model["fastest"][k]["path"], model["fastest"][k]["path"]) for k in MEASUREMENTS)
        )
        lines.append("| " + " | ".join(cells) + " |")
    settings = data.get("settings", {})
    lines += [
        "",
        f"Measured on {speed.machine}; medians of {settings.get('repeats', '?')} interleaved repeats of "
        f"{settings.get('steps', '?')} timed steps after a warm-up of {settings.get('warmup', '?')} (latency: "
        f"batch 1, {settings.get('latency_calls_per_step', '?')}x the steps). Speedup: large / pruned latency, "
        "pruned / large throughput; FLOPs (the paper's convention; the graph family's by FlopCounterMode) and "
        "params ratio: large / pruned. fastest: the fastest "
        f"path per model and measurement among {', '.join(settings.get('paths', []))}.  ",
    ]
    lines += [f"[{i}] {note}  " for i, note in enumerate(notes, 1)]
    lines += [f"Skipped: {s['name']}: {s['reason']}.  " for s in data.get("skipped", [])]
    return "\n".join(lines).rstrip() + "\n"
