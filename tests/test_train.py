"""Training cells in-process: complete result.json, reloadable weights, determinism, real CIFAR-10 accuracy, W&B."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import torch
from conftest import compose_settings

from rethink.arch import ArchSpec, build
from rethink.data import DatasetSettings, load_arrays
from rethink.data.augment import normalize
from rethink.pipeline.result import run_cell

FAST = ("dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu")


def _test_accuracy(run_dir: Path, dataset: DatasetSettings) -> float:
    """Top-1 (percent) of the saved spec + weights on the data set's test split."""
    model = build(ArchSpec.from_json((run_dir / "spec.json").read_text()))
    model.load_state_dict(torch.load(run_dir / "weights.pt", weights_only=True), strict=True)
    arrays = load_arrays(dataset)
    x = normalize(arrays.x_test, torch.tensor(dataset.mean), torch.tensor(dataset.std))
    with torch.no_grad():
        predictions = model.eval()(x).argmax(1)
    return 100 * (predictions == arrays.y_test).float().mean().item()


def test_cell_writes_complete_result_and_reloadable_weights(tmp_path: Path) -> None:
    cfg = compose_settings(*FAST, "seed=3", f"paths.artifact_dir={tmp_path / 'artifacts'}")
    result = run_cell(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert set(on_disk) >= {
        "cell",
        "params",
        "flops",
        "accuracy",
        "epochs",
        "wall_time_s",
        "git_sha",
        "versions",
        "config",
    }
    assert on_disk["cell"] == {
        "dataset": "synthetic",
        "model": "vgg11",
        "pruner": "none",
        "schedule": "baseline",
        "seed": 3,
    }
    assert [(s["stage"], s["status"]) for s in on_disk["stages"]] == [("pretrain", "computed")]
    assert on_disk["epochs"] == 2 and on_disk["config"]["model"]["width_multiplier"] == 0.125
    assert on_disk["flops"].keys() == {"macs", "paper", "convention"} and on_disk["flops"]["convention"] == "paper"
    assert on_disk["versions"]["torch"] == metadata.version("torch")
    acc = on_disk["accuracy"]
    assert 0 <= acc["top1_final"] <= acc["top1_best"] <= 100 and "top5_final" not in acc
    rows = (tmp_path / "pretrain" / "metrics.csv").read_text().splitlines()
    assert "test/top1" in rows[0] and len([r for r in rows[1:] if r.split(",")[0]]) >= 2
    assert abs(_test_accuracy(tmp_path, cfg.dataset) - acc["top1_final"]) < 1e-3


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    weights = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cfg = compose_settings(*FAST, f"seed={seed}", "pretrain.epochs=1", f"paths.artifact_dir={tmp_path / name}")
        run_cell(cfg, tmp_path / name)
        weights.append(torch.load(tmp_path / name / "weights.pt", weights_only=True))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_narrow_vgg_learns_real_cifar10(tmp_path: Path, cifar10_npz: Path) -> None:
    """A quarter-width VGG-11, 2 epochs on 5,000 real CIFAR-10 images, tested on all 10,000: >= 30% top-1."""
    cfg = compose_settings(
        "dataset=cifar10",
        f"dataset.npz_path={cifar10_npz}",
        "dataset.train_subset=5000",
        "model=vgg11",
        "model.width_multiplier=0.25",
        "pretrain.epochs=2",
        "pretrain.lr=0.05",
        "trainer=cpu",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
    )
    result = run_cell(cfg, tmp_path)
    assert result["accuracy"]["top1_final"] >= 30.0, result["accuracy"]


def test_wandb_offline_run_is_grouped_by_cell(tmp_path: Path) -> None:
    cfg = compose_settings(*FAST, "logger=wandb", "pretrain.epochs=1", f"paths.artifact_dir={tmp_path}")
    result = run_cell(cfg, tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))  # in the run directory, not the shared store
    assert len(runs) == 1 and not (Path(result["stages"][0]["path"]) / "wandb").exists()
    assert any(runs[0].glob("run-*.wandb"))
