"""What a run prints and logs: Lightning's own lines only with ``verbose=true``, every stage's ``metrics.csv`` kept
across a resume, accuracies in percent everywhere, top-5 only where it is defined."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import pytest
from conftest import compose_settings
from PIL import Image

from rethink.pipeline.result import run_cell
from rethink.training.loggers import StageWriter
from rethink.training.trainer import make_trainer

FAST = ("dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=1")
LOGGING_INTERVAL = "The number of training batches (8) is smaller than the logging interval"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("verbose", [False, True])
def test_lightnings_info_lines_and_library_noise_show_only_when_verbose(tmp_path: Path, verbose: bool) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    lightning = logging.getLogger("pytorch_lightning")
    lightning.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            make_trainer(compose_settings(*FAST, f"verbose={verbose}"), 1, [], tmp_path)
            warnings.warn(LOGGING_INTERVAL, UserWarning)  # as Lightning's fit loop warns on a short epoch
    finally:
        lightning.removeHandler(handler)
    assert any("GPU available" in line for line in lines) == verbose
    assert any(LOGGING_INTERVAL in str(w.message) for w in caught) == verbose


def test_a_resumed_stage_keeps_the_rows_of_the_epochs_it_does_not_train_again(tmp_path: Path) -> None:
    first = StageWriter(tmp_path, None)
    for epoch in range(3):  # killed in epoch 2, after the checkpoint of epoch 1
        first.log_metrics({"train/loss": 2.0 - epoch, "epoch": epoch}, step=10 * epoch)
        if epoch < 2:
            first.log_metrics({"test/top1": 10.0 * epoch, "epoch": epoch}, step=10 * epoch + 9)
        first.save()
    resumed = StageWriter(tmp_path, resumed_epoch=1)
    resumed.log_metrics({"train/loss": 0.5, "train/top1": 60.0, "epoch": 2}, step=20)  # a new column
    resumed.save()
    resumed.log_metrics({"test/top1": 20.0, "epoch": 2}, step=29)
    resumed.save()
    rows = _rows(tmp_path / "metrics.csv")
    assert [(r["epoch"], r["train/loss"], r["test/top1"]) for r in rows] == [
        ("0", "2.0", ""),
        ("0", "", "0.0"),
        ("1", "1.0", ""),
        ("1", "", "10.0"),
        ("2", "0.5", ""),
        ("2", "", "20.0"),
    ]
    assert rows[4]["train/top1"] == "60.0"
    StageWriter(tmp_path, None)  # a stage started afresh starts its file afresh
    assert not (tmp_path / "metrics.csv").exists()


def test_accuracies_are_logged_in_percent_as_the_result_gives_them(tmp_path: Path) -> None:
    result = run_cell(compose_settings(*FAST, "pretrain.epochs=2", f"paths.artifact_dir={tmp_path}"), tmp_path / "run")
    rows = _rows(tmp_path / "run" / "pretrain" / "metrics.csv")
    test = [r for r in rows if r["test/top1"]]
    assert [r["epoch"] for r in test] == ["0", "1"]
    assert float(test[-1]["test/top1"]) == pytest.approx(result["accuracy"]["top1_final"], abs=1e-3)
    assert float(test[-1]["test/top1_best"]) == pytest.approx(result["accuracy"]["top1_best"], abs=1e-3)
    train = [float(r["train/top1"]) for r in rows if r["train/top1"]]
    assert len(train) == 2 and max(train) > 1  # percent: a fraction would stay below 1


def test_top5_only_where_a_data_set_has_five_classes(tmp_path: Path) -> None:
    """A user's own ImageFolder of 3 classes: top-1 only (top-5 of 3 classes is undefined; torchmetrics refuses it)."""
    root = tmp_path / "images"
    for split in ("train", "val"):
        for label, colour in (("ant", (200, 0, 0)), ("bee", (0, 200, 0)), ("cat", (0, 0, 200))):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (40, 30), tuple(c + 10 * i for c in colour)).save(root / split / label / f"{i}.jpg")
    folder = ("dataset=imagenet", f"dataset.root={root}", "dataset.num_classes=3", "dataset.image_size=32")
    folder += ("dataset.batch_size=4", "dataset.test_batch_size=4", "dataset.num_workers=0")
    settings = compose_settings(*folder, *FAST[1:], f"paths.artifact_dir={tmp_path / 'artifacts'}")
    result = run_cell(settings, tmp_path / "run")
    assert set(result["accuracy"]) == {"unit", "top1_final", "top1_best"}
    assert "test/top5" not in _rows(tmp_path / "run" / "pretrain" / "metrics.csv")[0]
