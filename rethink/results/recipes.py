"""The recipe a table's Fine-tune-restart columns were trained with, stated under the table: no source fixes the
paper's restart recipe, and two variants exist (docs/protocol.md#finetune-restart)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from rethink.results import meta


def _recipe_text(result: dict[str, Any]) -> str:
    """``40 epochs from lr 0.01, x0.1 at 20`` for the run's final stage (``recipe``, else its schedule config)."""
    recipe = result.get("recipe") or ((result.get("config") or {}).get("schedule") or {})
    epochs, lr, drops = recipe.get("epochs"), recipe.get("lr"), recipe.get("milestones")
    text = f"{epochs} epochs from lr {lr:g}" if isinstance(lr, (int, float)) else f"{epochs} epochs"
    gamma = recipe.get("lr_gamma")
    if drops:
        text += f", x{gamma:g}" if isinstance(gamma, (int, float)) else ", LR drops"
        text += " at " + ", ".join(map(str, drops))
    return text


def restart_recipes(results: list[dict[str, Any]], title: Callable[[str], str]) -> dict[str, str]:
    """Per table, the recipe each Fine-tune-restart column (named by ``title``) was trained with."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in results:
        if meta.schedule(r["cell"]["schedule"]).get("states_recipe"):
            found[r["cell"]["pruner"]][r["cell"]["schedule"]].add(_recipe_text(r))
    return {
        table: "; ".join(
            f"{title(schedule)}: inherited weights, {' / '.join(sorted(recipes))}"
            for schedule, recipes in sorted(by_schedule.items())
        )
        + " (the paper's restart recipe is not confirmed by a source: docs/protocol.md#finetune-restart)"
        for table, by_schedule in found.items()
    }
