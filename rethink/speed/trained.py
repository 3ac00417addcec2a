"""Pruned models that training decided (Network Slimming, its uniform and guided controls), from finished runs
(``benchmarks/pruned_speed.py --result DIR``): a ``result.json`` whose pretrain and prune stages left a
``spec.json`` gives the large and the pruned architecture it trained, and its cell, config and pruner settings give
the identity a report row is keyed by. One run per row (the first found: seeds differ in widths); masked models
(weight pruners) and rows the catalogue already has are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from rethink.arch import ArchSpec, spec_cost
from rethink.pruning.naming import pruned_setting, prunes_weights, setting_label
from rethink.results import meta
from rethink.results.files import collect
from rethink.results.tables import UNPRUNED_TABLE, model_options
from rethink.speed.catalogue import IDENTITY, Candidate, frozen, seeded_build


def _spec(result: dict[str, Any], stage: str) -> ArchSpec | None:
    """The spec.json of the run's own stage ``stage``, or None."""
    for record in result.get("stages") or []:
        if isinstance(record, dict) and record.get("stage") == stage and "source" not in record:
            file = Path(str(record.get("path"))) / "spec.json"
            if file.is_file():
                return ArchSpec.from_json(file.read_text())
    return None


def trained_models(paths: Iterable[str | Path], known: list[Candidate]) -> tuple[list[Candidate], list[str]]:
    """The large and pruned models of the finished runs under ``paths`` that ``known`` lacks, and the problems met."""
    results, problems = collect(paths)
    seen = {frozen(m.identity()) for m in known}
    models: list[Candidate] = []
    larges: dict[str, Candidate] = {}
    for result in results:
        cell, config = result["cell"], result.get("config") or {}
        if meta.trains_unpruned(result) or prunes_weights(cell["pruner"]):
            continue
        large_spec, pruned_spec = _spec(result, "pretrain"), _spec(result, "prune")
        dataset = config.get("dataset") or {}
        if large_spec is None or pruned_spec is None or not isinstance(dataset.get("image_size"), int):
            continue
        setting, options = pruned_setting(result), model_options(result)
        common = dict(
            dataset=cell["dataset"],
            model=cell["model"],
            options=options,
            input_size=dataset["image_size"],
            num_classes=large_spec.num_classes,
            batch_size=int(dataset.get("batch_size") or 64),
        )
        identity = {"table": cell["pruner"], **common, "pruner": cell["pruner"], "setting": setting}
        identity = {k: identity[k] for k in IDENTITY}
        if frozen(identity) in seen:
            continue
        seen.add(frozen(identity))
        large_key = frozen([cell["dataset"], large_spec.to_json()])
        if large_key not in larges:
            cost = spec_cost(large_spec, common["input_size"])
            name = f"{cell['dataset']}/{cell['model']} (trained run {len(larges) + 1})"
            larges[large_key] = Candidate(
                name, "large", "result", UNPRUNED_TABLE, pruner="none", setting={}, params=cost.params,
                flops=cost.flops, build=seeded_build(large_spec), **common,
            )  # fmt: skip
            models.append(larges[large_key])
        large = larges[large_key]
        cost = spec_cost(pruned_spec, common["input_size"])
        models.append(
            Candidate(
                f"{large.name}/{cell['pruner']} {setting_label(setting)} (seed {cell['seed']})",
                "pruned",
                "result",
                cell["pruner"],
                pruner=cell["pruner"],
                setting=setting,
                params=cost.params,
                flops=cost.flops,
                build=seeded_build(pruned_spec),
                large=large.name,
                notes=[f"widths of {result['_file']}"],
                **common,
            )  # fmt: skip
        )
    grouped = [m for large in larges.values() for m in models if m is large or m.large == large.name]
    return grouped, problems
