"""A sweep's default folder: named by its experiment and command-line overrides, stable (the same command continues
the same sweep), readable, and never shared by different overrides."""

from __future__ import annotations

import re

from rethink.sweep_name import sweep_name


def test_a_sweeps_default_folder_is_named_by_its_experiment_and_overrides() -> None:
    assert sweep_name("paper/l1_cifar10", ["experiment=paper/l1_cifar10"]) == "paper/l1_cifar10/default"
    assert sweep_name("paper/l1_cifar10", ["experiment=paper/l1_cifar10", "dry_run=true"]) == (
        "paper/l1_cifar10/default"  # a dry run names the folder the sweep will use
    )
    assert sweep_name(None, ["trainer=cpu", "seed=1,2"]) == "sweep/seed=1,2__trainer=cpu"  # swept first
    nested = sweep_name(None, ["+experiment/paper/row=vgg16_a", "seed=1,2"])
    assert re.fullmatch(r"sweep/seed=1,2__\+experiment-paper-row=vgg16_a-[0-9a-f]{8}", nested)
    long = sweep_name("demo", ["experiment=demo", f"paths.artifact_dir=/tmp/{'x' * 100}", "seed=3"])
    other = sweep_name("demo", ["experiment=demo", f"paths.artifact_dir=/tmp/{'x' * 100}", "seed=4"])
    assert long.startswith("demo/paths.artifact_dir=-tmp-xxx") and len(long) < 80 and long != other
    # the order of the swept overrides numbers the jobs (and names the cells' folders); the others' does not matter
    assert sweep_name(None, ["seed=1,2", "trainer=cpu"]) == sweep_name(None, ["trainer=cpu", "seed=1,2"])
    assert sweep_name(None, ["seed=1,2", "schedule=a,b"]) != sweep_name(None, ["schedule=a,b", "seed=1,2"])
