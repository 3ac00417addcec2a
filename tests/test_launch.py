"""One cell per device (``launch.device_slots``, :mod:`rethink.launch`): the slot allocator, the refusals, a pin that
leaves the stage keys alone, and a joblib multirun whose two concurrent jobs (two pruners of one model: a slice of Table
1) hold two simulated slots and share one pretrain."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import compose_settings
from test_paper_configs import compose_with_hydra
from test_sweeps import TINY, results, run

from rethink import launch
from rethink.errors import UserError
from rethink.main import cli
from rethink.pipeline.keys import pretrain_key
from rethink.pipeline.tasks import cell_plan

PINNED_CELL = (*[o for o in TINY if not o.startswith("model=")], "+experiment/paper/row=vgg16_a")


def test_two_holders_get_different_slots_and_a_released_slot_is_taken_again(tmp_path: Path) -> None:
    with launch.device_slot(tmp_path, 2) as first, launch.device_slot(tmp_path, 2) as second:
        assert (first, second) == (0, 1)
    with launch.device_slot(tmp_path, 2) as again:
        assert again == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.lock", "1.lock"]


def test_a_holder_finding_every_slot_held_waits_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "POLL_S", 0.01)
    taken: list[int] = []
    with launch.device_slot(tmp_path, 2), launch.device_slot(tmp_path, 2) as second:

        def third() -> None:
            with launch.device_slot(tmp_path, 2) as slot:
                taken.append(slot)

        waiter = threading.Thread(target=third)
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive() and not taken  # both slots held: it waits
    waiter.join()
    # it took a slot once they were released: either, since the two are released one after the other
    assert taken in ([0], [1]) and second == 1


def test_a_pinned_job_exports_its_slot_and_releases_it_on_an_error(tmp_path: Path) -> None:
    settings = compose_settings(*TINY, "launch.device_slots=2")
    with pytest.raises(RuntimeError), launch.pinned_job(settings, tmp_path) as slot:
        assert slot == 0 and launch.held_slot() == 0 and os.environ[launch.SLOT_ENV] == "0"
        assert launch.pinned_arguments(settings.trainer.arguments) == dict(settings.trainer.arguments)  # CPU
        raise RuntimeError("the cell failed")
    assert launch.held_slot() is None and launch.SLOT_ENV not in os.environ
    with launch.pinned_job(settings, tmp_path) as slot:
        assert slot == 0  # released on the error
    with launch.pinned_job(compose_settings(*TINY), None) as slot:
        assert slot is None  # no launch.device_slots: no pinning


def test_on_a_gpu_the_pin_picks_the_slots_device_and_leaves_the_stage_keys_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    cell = (*PINNED_CELL, "trainer=gpu", "schedule=finetune")
    pinned, plain = compose_settings(*cell, "launch.device_slots=2"), compose_settings(*cell)
    with launch.device_slot(tmp_path / launch.SLOTS_FOLDER, 2), launch.pinned_job(pinned, tmp_path) as slot:
        assert slot == 1
        assert launch.pinned_arguments(pinned.trainer.arguments)["devices"] == [1]
    assert pretrain_key(cell_plan(pinned)) == pretrain_key(cell_plan(plain))


@pytest.mark.parametrize(
    ("overrides", "multirun", "message"),
    [
        (("trainer.devices=2",), True, "trainer.devices=2 with launch.device_slots=2"),
        (("trainer=ddp",), True, "trainer.devices=2 with launch.device_slots=2"),
        (("trainer.strategy=ddp",), True, "trainer.strategy='ddp' with launch.device_slots=2"),
        (("trainer.num_nodes=2",), True, "trainer.num_nodes=2 with launch.device_slots=2"),
        ((), False, "this is a single run"),
        (("trainer=gpu", "launch.device_slots=3"), True, "has 2 CUDA GPU(s) visible"),
    ],
)
def test_pinning_that_cannot_work_is_refused_before_anything_runs(
    overrides: tuple[str, ...], multirun: bool, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    settings = compose_settings(*TINY, "launch.device_slots=2", *overrides)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with launch.pinned_job(settings, tmp_path if multirun else None):
            pytest.fail("a refused job ran")
    assert not (tmp_path / launch.SLOTS_FOLDER).exists()


def test_a_single_run_with_device_slots_is_refused_in_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    proc = run("rethink.main", *TINY, "launch.device_slots=2", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("rethink: error: launch.device_slots=2 shares a node's devices among the cells")
    assert list(tmp_path.iterdir()) == []


def test_the_gpu_launcher_preset_runs_one_job_per_device_slot() -> None:
    cfg = compose_with_hydra("experiment=paper/l1_cifar10", "hydra/launcher=rethink_gpus", "launch.device_slots=8")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 8


def test_the_gpu_launcher_without_a_slot_count_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m rethink.main`` (its ``cli()``, in process: it refuses before Hydra starts)."""
    argv = ["rethink.main", "-m", *TINY, "hydra/launcher=rethink_gpus", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stopped:
        cli()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"rethink: error: {launch.launcher_problem(['hydra/launcher=rethink_gpus'])}"
    )
    assert "given. Give the node's number of GPUs, e.g. launch.device_slots=8." in launch.launcher_problem(argv)
    assert launch.launcher_problem([*argv, "launch.device_slots=8"]) is None
    assert not (tmp_path / "sweep").exists()


def test_joblib_multirun_pins_each_job_to_its_own_slot_and_trains_the_shared_large_model_once(tmp_path: Path) -> None:
    sweep_dir, artifacts = tmp_path / "sweep", tmp_path / "artifacts"
    proc = run(
        "rethink.main",
        "experiment=paper/quick/l1_cifar10",  # a slice of Table 1: ResNet-56-A and -B share their large model
        "+experiment/paper/row=resnet56_a,resnet56_b",
        "schedule=finetune",
        "seed=1",
        "hydra/launcher=rethink_gpus",
        "launch.device_slots=2",  # two simulated devices: two jobs at once
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.artifact_dir={artifacts}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(sweep_dir)
    assert sorted(r["config"]["pruner"]["variant"] for r in found) == ["A", "B"]
    assert sorted(r["launch"]["device_slot"] for r in found) == [0, 1]  # concurrent jobs, one slot each
    for r in found:  # the stages a job trained record its slot
        assert r["stages"][-1]["device"] == f"cpu (device slot {r['launch']['device_slot']})"
    pretrains = [r["stages"][0] for r in found]
    assert {s["stage"] for s in pretrains} == {"pretrain"} and len({s["key"] for s in pretrains}) == 1
    assert sorted(s["status"] for s in pretrains) == ["computed", "reused"]
    assert len(list((artifacts / "pretrain").glob("*/manifest.json"))) == 1
    assert sorted(p.name for p in (sweep_dir / launch.SLOTS_FOLDER).iterdir()) == ["0.lock", "1.lock"]
