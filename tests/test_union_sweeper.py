"""hydra/sweeper=rethink_union: the basic sweeper's product, then each union entry's, each job once; the command line
narrows every part; the dry run and the sweeper expand the same jobs."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from rethink.errors import UserError
from rethink.pipeline.jobs import UNION_SWEEPER, parse_union

PARAMS = {"dataset": "cifar10,cifar100", "+row": "vgg,resnet", "+method": "global,layer", "seed": "1,2"}
TRANSFER = {"dataset": "cifar100", "+row": "vgg", "+method": "transferred,control"}


def union_sweeper() -> type:
    """The class Hydra finds in hydra_plugins (its plugin scan executes the modules again: use its classes)."""
    found = {f"{p.__module__}.{p.__name__}": p for p in Plugins.instance().discover(Sweeper)}
    assert UNION_SWEEPER in found
    return found[UNION_SWEEPER]


def jobs(*task: str, params: dict | None = None, union: list | None = None) -> list[list[str]]:
    return parse_union(OverridesParser.create(), PARAMS if params is None else params, union, task)


def cells(found: list[list[str]]) -> list[dict[str, str]]:
    return [dict(o.lstrip("+").split("=", 1) for o in job) for job in found]


@pytest.mark.parametrize("task", [(), ("seed=3",), ("dataset=cifar10", "+extra=a,b"), ("+method=global",)])
def test_without_a_union_the_jobs_are_the_basic_sweeper_s(task: tuple[str, ...]) -> None:
    parser = OverridesParser.create()
    arguments = [f"{k}={v}" for k, v in PARAMS.items()] + list(task)
    basic = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(arguments), None) for job in batch]
    assert jobs(*task) == basic


def test_a_union_entry_adds_its_product_after_the_sweep_s_own_jobs() -> None:
    found = jobs(union=[TRANSFER])
    assert found[:16] == jobs()  # the first product's job numbers (and so its cells' folders) are unchanged
    assert cells(found[16:]) == [
        {"dataset": "cifar100", "row": "vgg", "method": method, "seed": seed}
        for method in ("transferred", "control")
        for seed in ("1", "2")
    ]


def test_the_command_line_narrows_every_part() -> None:
    union = [TRANSFER]
    assert cells(jobs("dataset=cifar10", union=union)) == cells(jobs("dataset=cifar10"))  # the entry's cifar100 only
    narrowed = cells(jobs("dataset=cifar100", "seed=2", union=union))
    assert len(narrowed) == 2 * 2 + 2 and all(c["dataset"] == "cifar100" and c["seed"] == "2" for c in narrowed)
    # the transfer alone: the first product takes the command line's values, the entry selects the same ones, and
    # a job both give runs once
    only = cells(jobs("dataset=cifar100", "+row=vgg", "+method=transferred,control", union=union))
    assert only == [
        {"dataset": "cifar100", "row": "vgg", "method": m, "seed": s} for m in ("transferred", "control") for s in "12"
    ]
    assert cells(jobs("+method=global", union=union)) == cells(jobs("+method=global"))


def test_the_sweeper_launches_what_the_dry_run_lists_in_batches() -> None:
    sweeper = union_sweeper()(max_batch_size=3, params=PARAMS, union=[TRANSFER])
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    sweeper.task = ["seed=1"]
    batches = sweeper.split_arguments([], 3)
    expected = jobs("seed=1", union=[TRANSFER])
    assert [len(b) for b in batches] == [3, 3, 3, 1] and [job for b in batches for job in b] == expected


def test_bad_unions_are_refused_with_the_fix() -> None:
    with pytest.raises(UserError, match=re.escape("hydra.sweeper.union: {'dataset': 'cifar100'} is not a list")):
        union_sweeper()(max_batch_size=None, params=PARAMS, union={"dataset": "cifar100"})
    with pytest.raises(UserError, match=r"seed=interval\(1,2\): a sweep needs a list of values"):
        jobs("seed=interval(1,2)", union=[TRANSFER])
