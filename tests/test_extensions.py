"""Open seams: a pruner or an architecture family defined outside rethink/ (tests/toy_plugins.py, registered through
the public registries only) plans, dry-runs and runs end to end; a family that lacks what a pruner needs is refused
when the plan is built, before any training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_plugins  # noqa: F401  (registers the toy pruners and families)
from conftest import REPO, compose_config, compose_settings

from rethink import plugins
from rethink.arch import build, default_spec, spec_cost
from rethink.arch.cost import count_cost
from rethink.arch.surgery import group_widths, mask, shrink
from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell

TINY = ("dataset=synthetic", "trainer=cpu", "pretrain.epochs=1", "trainer.limit_train_batches=2")
RESNET = ("model=resnet56", "model.width_multiplier=0.25")


def _stages(result: dict) -> list[tuple[str, str]]:
    return [(s["stage"], s["status"]) for s in result["stages"]]


def test_a_registered_pruner_is_a_config_option_that_plans_dry_runs_and_runs(tmp_path: Path) -> None:
    cfg = compose_config(*TINY, *RESNET, "pruner=every_other", "schedule=finetune")
    assert cfg.pruner._target_ == "toy_plugins.EveryOther" and cfg.pruner.offset == 0
    plan = build_plan(compose_settings(*TINY, *RESNET, "pruner=every_other", "schedule=finetune")).to_dict()
    assert plan["cell"]["pruner"] == "every_other" and plan["pruning"]["decided_by_training"]
    assert [s["name"] for s in plan["stages"]] == ["pretrain", "retrain"]
    overrides = (*TINY, *RESNET, "pruner=every_other", "schedule=finetune", f"paths.artifact_dir={tmp_path}")
    result = run_cell(compose_settings(*overrides), tmp_path / "run")
    assert _stages(result) == [("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")]
    widths = result["pruning"]["widths"]
    assert widths["after"] == {name: (width + 1) // 2 for name, width in widths["before"].items()}
    keep = json.loads((Path(result["stages"][1]["path"]) / "keep.json").read_text())
    assert keep["layer1.0.conv1"] == [0, 2] and result["pruning"]["pruner"] == "every_other"
    assert result["options"]["pruner"] == {
        "name": "every_other",
        "title": "Every other channel (a toy)",
        "table_order": 100,
    }
    # a report in a process that never imports the toy plugins still titles its table (from result.json)
    env = {**os.environ, "WANDB_MODE": "offline"}
    report = subprocess.run([sys.executable, "-m", "rethink.report", str(tmp_path / "run")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0 and "Every other channel (a toy)" in report.stdout, report.stderr[-2000:]
    with pytest.raises(UserError, match=r"pruner\.offset='one' \(str\): expected an integer"):
        compose_settings(*TINY, *RESNET, "pruner=every_other", "pruner.offset=one", "schedule=finetune")


def test_a_data_driven_pruner_reads_the_calibration_batches(tmp_path: Path) -> None:
    overrides = (*TINY, *RESNET, "pruner=activation", "schedule=scratch_e", f"paths.artifact_dir={tmp_path}")
    result = run_cell(compose_settings(*overrides, "calibration.batches=3"), tmp_path / "run")
    prune = Path(result["stages"][1]["path"])
    notes = json.loads((prune / "decision.json").read_text())
    assert notes == {"calibration_batches": 3, "calibration_images": 3 * 32}  # synthetic: batches of 32
    assert result["pruning"]["achieved"]["channels_pruned_fraction"] == pytest.approx(0.5, abs=0.02)
    other = run_cell(compose_settings(*overrides, "calibration.batches=2"), tmp_path / "other")
    assert other["stages"][0]["status"] == "reused"  # the data it reads is part of the decision's key only
    assert other["stages"][1]["key"] != result["stages"][1]["key"]


@pytest.mark.parametrize(
    "pruner",
    [
        ("pruner=l1", "pruner.layer_ratios=[0.5,0.5]"),
        ("pruner=random", "pruner.stage_ratios=[0.25,0.5]"),
        ("pruner=magnitude", "pruner.ratio=0.6"),
        ("pruner=slimming", "pruner.ratio=0.3"),
    ],
    ids=lambda p: p[0],
)
def test_a_registered_family_runs_every_channel_and_weight_pruner(tmp_path: Path, pruner: tuple[str, ...]) -> None:
    overrides = (*TINY, "model=toynet", *pruner, "schedule=finetune", f"paths.artifact_dir={tmp_path}")
    result = run_cell(compose_settings(*overrides), tmp_path / "run")
    assert _stages(result) == [("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed")]
    assert result["pruning"]["achieved"]["params_pruned_fraction"] > 0
    after = result["pruning"]["widths"]["after"]
    if pruner[0] == "pruner=l1":
        assert after == {"features.0": 4, "features.4": 8}  # its declared numbering: convs 1 and 2
    if pruner[0] == "pruner=random":
        assert after == {"features.0": 6, "features.4": 8}  # stage 0 keeps 75%, stage 1 half


def test_surgery_of_a_registered_family_computes_the_masked_function() -> None:
    spec = default_spec("toynet", 10)
    torch.manual_seed(0)
    model = build(spec).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.bias.uniform_(-1, 1)
    keep = {"features.0": [1, 3, 4], "features.4": [0, 5, 6, 9, 15]}
    pruned_spec, pruned = shrink(model, spec, keep)
    assert group_widths(pruned_spec) == {"features.0": 3, "features.4": 5}
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(mask(model, spec, keep)(x), pruned.eval()(x), atol=1e-5)
    ungated = build(spec)
    ungated.gate = torch.nn.Identity()
    assert spec_cost(spec, 32).flops - count_cost(ungated, 32).flops == 16 * 16 * 16  # the Gate's declared rule


@pytest.mark.parametrize(
    "pruner, missing",
    [
        (("pruner=l1", "pruner.layer_ratios=[0.5,0.5]"), "its prunable channel groups"),
        (("pruner=random", "pruner.layer_ratios=[0.5,0.5]"), "its prunable channel groups"),
        (("pruner=slimming",), "its prunable channel groups"),
        (("pruner=uniform", "pruner.ratio=0.5"), "its prunable channel groups"),
        (("pruner=sss",), "its removable residual blocks"),
        (("pruner=every_other",), "its prunable channel groups"),
    ],
    ids=lambda p: p[0] if isinstance(p, tuple) else None,
)
def test_a_family_without_the_declaration_a_pruner_needs_is_refused_at_plan_time(
    tmp_path: Path, pruner: tuple[str, ...], missing: str
) -> None:
    settings = compose_settings(
        *TINY, "model=toyplain", *pruner, "schedule=scratch_e", f"paths.artifact_dir={tmp_path}"
    )
    name = pruner[0].partition("=")[2]
    with pytest.raises(UserError) as error:
        run_cell(settings, tmp_path / "run")
    message = str(error.value)
    assert message.startswith(f"pruner={name} cannot prune model 'toyplain': its family 'toy_plain' does not declare")
    assert missing in message and "Declare it in the family's module, or pick another pruner." in message
    assert not tmp_path.joinpath("pretrain").exists() and not (tmp_path / "run").exists()  # nothing trained


def test_magnitude_needs_no_declaration_and_a_layer_without_cost_rule_is_refused() -> None:
    plan = build_plan(compose_settings(*TINY, "model=toyplain", "pruner=magnitude", "schedule=finetune")).to_dict()
    assert plan["cell"]["pruner"] == "magnitude"
    with pytest.raises(UserError, match=r"cannot count the FLOPs of layer 'gate' of type SiLU"):
        build_plan(compose_settings(*TINY, "model=toyuncounted"))


def test_a_pruner_of_the_users_own_package_dry_runs_from_the_command_line(tmp_path: Path) -> None:
    """The route of a pruner outside this repository: a config option on the search path names its class."""
    options = tmp_path / "conf" / "pruner"
    options.mkdir(parents=True)
    (options / "every_other.yaml").write_text("_target_: toy_plugins.EveryOther\nname: every_other\noffset: 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]), "WANDB_MODE": "offline"}
    command = [
        sys.executable, "-m", "rethink.main", *RESNET, "dataset=cifar10", "pruner=every_other", "schedule=scratch_b",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "dry_run=true", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    assert plan["cell"]["pruner"] == "every_other" and plan["pruning"]["requested"] == {"offset": 1}
    assert plan["stages"][-1]["recipe"].startswith("decided by training")  # Scratch-B waits for the decision


def test_plugins_imports_the_users_package_and_puts_its_conf_on_the_search_path(tmp_path: Path) -> None:
    """``plugins=[userpkg]``: no ``hydra.searchpath`` and no ``--config-path``; the package's ``conf/`` holds the
    option, its import registers what the option names."""
    options = tmp_path / "userpkg" / "conf" / "pruner"
    options.mkdir(parents=True)
    (tmp_path / "userpkg" / "__init__.py").write_text("from toy_plugins import EveryOther  # noqa: F401\n")
    (options / "every_other.yaml").write_text("_target_: userpkg.EveryOther\nname: every_other\noffset: 1\n")
    path = os.pathsep.join([str(tmp_path), str(REPO / "tests"), str(REPO)])
    env = {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "offline"}
    command = [
        sys.executable, "-m", "rethink.main", "plugins=[userpkg]", *RESNET, "dataset=cifar10", "pruner=every_other",
        "schedule=scratch_b", "dry_run=true", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    assert plan["cell"]["pruner"] == "every_other" and plan["pruning"]["requested"] == {"offset": 1}
    missing = subprocess.run([*command[:3], "plugins=[nosuchpkg]", *command[4:]], cwd=REPO, env=env, text=True,
                             capture_output=True, timeout=300)  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.startswith("rethink: error: plugins: cannot import 'nosuchpkg'")
    assert "Traceback" not in missing.stderr and "PYTHONPATH" in missing.stderr


def test_plugins_come_from_the_environment_and_the_command_line_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV, "a.b, c")
    assert plugins.requested(["seed=1", "plugins=[c,d]", "+plugins='e'"]) == ["a.b", "c", "d", "e"]
    folders = [Path("/x/conf")]
    assert plugins.with_search_path(["seed=1"], folders) == ["seed=1", "hydra.searchpath=[file:///x/conf]"]
    given = plugins.with_search_path(["hydra.searchpath=[pkg://other.conf]", "seed=1"], folders)
    assert given == ["seed=1", "hydra.searchpath=[pkg://other.conf,file:///x/conf]"]
    with pytest.raises(UserError, match="plugins: cannot import 'nosuchpkg'"):
        plugins.load(["nosuchpkg"])
