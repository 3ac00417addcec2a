"""Tables from ``result.json`` files: ``python -m rethink.report DIR...`` and the summary printed after every sweep.

Rows are (dataset, model, pruner setting); columns are Unpruned (the large model's accuracy, from the pretrain
stage) and one per retraining schedule; each cell is ``mean ± std (n)`` of the final top-1 accuracy over seeds.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SCHEDULE_ORDER = ("baseline", "finetune", "scratch_e", "scratch_b", "finetune_restart", "lottery", "lr_rewind")


def collect(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable ``result.json`` under ``paths``, and a note for each unreadable one."""
    results, problems = [], []
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(root.rglob("result.json"))
        if not files:
            problems.append(f"{root}: no result.json found")
        for file in files:
            try:
                results.append(json.loads(file.read_text()))
            except (OSError, ValueError) as exc:
                problems.append(f"{file}: unreadable ({exc})")
    return results, problems


def setting(result: dict[str, Any]) -> str:
    """The pruned-model label of a row: pruner plus its variant or ratios."""
    pruning = result.get("pruning")
    if not pruning:
        return "-"
    requested = {k: v for k, v in pruning["requested"].items() if v not in (None, [], {})}
    details = ", ".join(f"{k}={v}" for k, v in requested.items())
    return f"{pruning['pruner']} {details}".strip()


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f} ({len(values)})"


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table of final top-1 accuracy (percent), mean ± std (n) over seeds."""
    cells: dict[tuple[str, str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for result in results:
        cell = result["cell"]
        row = (cell["dataset"], cell["model"], setting(result))
        cells[row][cell["schedule"]][cell["seed"]] = result["accuracy"]["top1_final"]
        for stage in result.get("stages", []):
            if stage["stage"] == "pretrain" and stage.get("accuracy"):
                cells[row]["unpruned"][cell["seed"]] = stage["accuracy"]["top1_final"]
    columns = ["unpruned"] + [s for s in SCHEDULE_ORDER if any(s in c for c in cells.values())]
    lines = [
        "| dataset | model | pruned | " + " | ".join(columns) + " |",
        "|" + " --- |" * (3 + len(columns)),
    ]
    for (dataset, model, label), by_schedule in sorted(cells.items()):
        values = [_mean_std(list(by_schedule[c].values())) if by_schedule.get(c) else "" for c in columns]
        lines.append(f"| {dataset} | {model} | {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback: after a multirun, print the table of the sweep's results."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results, problems = collect([sweep_dir])
        if results:
            print(f"\nTest top-1 accuracy (%), final epoch, mean ± std (n seeds) — {sweep_dir}\n{table(results)}")
        for problem in problems:
            print(f"rethink.report: {problem}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """CLI: print the table of every result under the given paths."""
    if not argv:
        print("usage: python -m rethink.report DIR_OR_RESULT_JSON...", file=sys.stderr)
        return 2
    results, problems = collect(argv)
    for problem in problems:
        print(f"rethink.report: {problem}", file=sys.stderr)
    if results:
        print(table(results))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
