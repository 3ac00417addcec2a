"""What the report knows of the cells' schedules and data sets — titles, orders, roles, the settings compared with
the paper's protocol — read from what each result recorded (``options`` of result.json), so a report needs no
import of a user's package; results of older versions recorded none and get the registered option's (every in-tree
option is registered), an option known to neither gets defaults (its name as title, last in order, no role).

The report loads what its results recorded once (:func:`learn`, called by the table builder); the registered
options win over recorded ones of the same name.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from rethink.arch import MODELS
from rethink.data.registry import DATASETS
from rethink.pipeline.schedules import SCHEDULES

_RECORDED: dict[str, dict[str, dict[str, Any]]] = {"schedule": {}, "dataset": {}, "model": {}}
DEFAULT_ORDER = 100


def learn(results: Iterable[Mapping[str, Any]]) -> None:
    """Remember what each result recorded of its schedule and data set (``options.schedule``, ``options.dataset``)."""
    for r in results:
        options, cell = r.get("options") or {}, r.get("cell") or {}
        for group in _RECORDED:
            record = options.get(group)
            if isinstance(record, Mapping) and record.get("name") == cell.get(group):
                _RECORDED[group].setdefault(str(record["name"]), dict(record))


def _record(group: str, name: str, registered: Mapping[str, Any] | None, default: Mapping[str, Any]) -> dict[str, Any]:
    """The registered option's record, else the recorded one, over the defaults (the name as title)."""
    found = registered if registered is not None else _RECORDED[group].get(name, {})
    return {"name": name, "title": name, **default, **found}


def schedule(name: str) -> Mapping[str, Any]:
    """The schedule ``name``'s record: name, title, column_order, role, protocol, states_recipe."""
    cls = SCHEDULES.get(name)
    default = {"column_order": DEFAULT_ORDER, "role": None, "protocol": [], "states_recipe": False}
    return _record("schedule", name, None if cls is None else cls.record(), default)


def dataset(name: str) -> Mapping[str, Any]:
    """The data set ``name``'s record: name, title, order, top5."""
    cls = DATASETS.get(name)
    return _record("dataset", name, None if cls is None else cls.record(), {"order": DEFAULT_ORDER, "top5": False})


def model(name: str) -> Mapping[str, Any]:
    """The model ``name``'s record: name, family (as its results recorded it), title (its registered description)."""
    found = {**_RECORDED["model"].get(name, {}), **({"title": MODELS[name].description} if name in MODELS else {})}
    return _record("model", name, None, {"family": None, **found})


def legend(results: Iterable[Mapping[str, Any]]) -> str:
    """``Data sets: CIFAR-10 (cifar10). Models: resnet56 (ResNet-56 ...).``: what the results' names stand for."""
    cells = [r.get("cell") or {} for r in results]
    datasets = sorted({c["dataset"] for c in cells if "dataset" in c}, key=lambda n: (dataset_order(n), n))
    models = sorted({c["model"] for c in cells if "model" in c})

    def model_text(name: str) -> str:
        record = model(name)
        family = f"; family {record['family']}" if record.get("family") else ""
        return f"{name} ({record['title']}{family})"

    text = "Data sets: " + ", ".join(f"{dataset(n)['title']} ({n})" for n in datasets) + ". "
    return text + "Models: " + ", ".join(map(model_text, models)) + "."


def schedule_title(name: str) -> str:
    return str(schedule(name)["title"] or name)


def schedule_order(name: str) -> int:
    order = schedule(name)["column_order"]
    return order if isinstance(order, int) else DEFAULT_ORDER


def dataset_order(name: str) -> int:
    order = dataset(name)["order"]
    return order if isinstance(order, int) else DEFAULT_ORDER


def role(name: str) -> str | None:
    """The schedule's role in the verdicts: ``unpruned``, ``finetuned``, ``scratch`` or None."""
    found = schedule(name)["role"]
    return found if isinstance(found, str) else None


def trains_unpruned(result: Mapping[str, Any]) -> bool:
    """Whether a result's schedule trains the unpruned model (``schedule=baseline``: the Unpruned column)."""
    return role(result["cell"]["schedule"]) == "unpruned"


def with_role(wanted: str, names: Iterable[str]) -> list[str]:
    """Those of the schedules ``names`` with role ``wanted``, the later column first (Scratch-B before Scratch-E)."""
    return sorted((n for n in set(names) if role(n) == wanted), key=lambda n: (-schedule_order(n), n))


def unpruned_schedule() -> str:
    """The registered schedule that trains the unpruned model (the published Unpruned numbers' schedule)."""
    return next(name for name, cls in SCHEDULES.classes.items() if cls.role == "unpruned")


def protocol_checks(name: str) -> list[tuple[str, str | None]]:
    """(config path, key of the paper's protocol) pairs a retraining of schedule ``name`` is compared on."""
    return [(str(path), None if key is None else str(key)) for path, key in schedule(name)["protocol"]]
