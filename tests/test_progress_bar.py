"""The progress bar says where a run is: cell, stage, 1-based epoch, loss and the last epoch's test top-1; the
``progress_bar`` setting picks Lightning's rich or tqdm bar."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_settings
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.trainer.states import TrainerFn

from rethink.training.progress_bar import (
    EpochLines,
    StageRichProgressBar,
    StageTQDMProgressBar,
    bar_metrics,
    epoch_description,
    progress_style,
)
from rethink.training.trainer import make_trainer

LABEL = "cifar10/resnet56/l1 A/scratch_b seed 1 | retrain"


def test_the_rendered_line_names_cell_stage_one_based_epoch_and_test_top1() -> None:
    trainer = SimpleNamespace(current_epoch=2, max_epochs=178)  # Lightning's third epoch (0-based 2)
    module = SimpleNamespace(last={"top1": 0.91234})
    bar = StageRichProgressBar(LABEL)
    bar._trainer = trainer
    metrics = bar_metrics({"v_num": 0, "train/loss_step": 0.25, "train/loss_epoch": 0.3}, module)
    line = f"{bar._get_train_description(trainer.current_epoch)} {metrics}"
    assert line.startswith("cifar10/resnet56/l1 A/scratch_b seed 1 | retrain | epoch 3/178 ")
    assert metrics == {"loss": 0.25, "epoch loss": 0.3, "test top-1": "91.23%"}
    assert bar.validation_description == f"{LABEL} | test"
    assert "test top-1" not in bar_metrics({}, SimpleNamespace(last={}))  # no epoch finished yet
    assert epoch_description("x", 0, None) == "x | epoch 1"


def test_the_tqdm_bar_describes_each_epoch_the_same_way() -> None:
    described: list[str] = []
    tqdm = SimpleNamespace(reset=lambda: None, set_description=described.append, total=0, initial=0)
    trainer = SimpleNamespace(current_epoch=0, max_epochs=40, max_steps=-1, num_training_batches=3)
    bar = StageTQDMProgressBar(LABEL)
    bar._trainer, bar._train_progress_bar = trainer, tqdm
    bar.on_train_epoch_start(trainer)
    assert described[-1] == f"{LABEL} | epoch 1/40" and tqdm.total == 3  # Lightning's "Epoch 0" replaced


@pytest.mark.parametrize(("style", "kind"), [("tqdm", TQDMProgressBar), ("rich", RichProgressBar)])
def test_progress_bar_setting_picks_the_bar(tmp_path: Path, style: str, kind: type) -> None:
    settings = compose_settings("dataset=synthetic", "trainer=cpu", f"progress_bar={style}")
    trainer = make_trainer(settings, 1, [], tmp_path, label=LABEL)
    bars = [c for c in trainer.callbacks if isinstance(c, (TQDMProgressBar, RichProgressBar))]
    assert len(bars) == 1 and isinstance(bars[0], kind) and bars[0].label == LABEL
    hidden = compose_settings("dataset=synthetic", "trainer=cpu", "trainer.enable_progress_bar=false")
    assert not any(
        isinstance(c, (TQDMProgressBar, RichProgressBar)) for c in make_trainer(hidden, 1, [], tmp_path).callbacks
    )


def test_progress_lines_print_one_line_per_epoch_with_elapsed_time_and_images_per_second(
    capsys: pytest.CaptureFixture,
) -> None:
    now = iter([0.0, 100.0, 100.5, 102.0, 103.0, 303.0]).__next__  # made, epoch start, 2 batches, epoch end, eval
    lines = EpochLines(LABEL, clock=now)
    trainer = SimpleNamespace(
        is_global_zero=True,
        current_epoch=4,
        max_epochs=178,
        world_size=2,  # DDP: each process's batch counts once per process
        progress_bar_metrics={"train/loss_step": 0.2, "train/loss_epoch": 0.31},
        state=SimpleNamespace(fn=TrainerFn.FITTING),
    )
    module = SimpleNamespace(last={"top1": 0.9})
    lines.on_train_epoch_start(trainer, module)
    for _ in range(2):
        lines.on_train_batch_end(trainer, module, {"loss": 0.2}, (torch.zeros(64, 3, 4, 4), torch.zeros(64)), 0)
    lines.on_train_epoch_end(trainer, module)  # 256 images in 2 s of training batches
    lines.on_validation_end(trainer, module)  # fit's test pass: the epoch line says it
    assert capsys.readouterr().err == (
        f"rethink: {LABEL} | epoch 5/178  epoch loss 0.310  test top-1 90.00%  128 img/s  elapsed 0:01:43\n"
    )
    trainer.state.fn, trainer.progress_bar_metrics = TrainerFn.VALIDATING, {}  # the prune stage's evaluation
    lines.on_validation_end(trainer, SimpleNamespace(last={"top1": 0.1}))
    assert capsys.readouterr().err == f"rethink: {LABEL}  test top-1 10.00%  elapsed 0:05:03\n"


@pytest.mark.parametrize(("terminal", "style"), [(True, "rich"), (False, "lines")])
def test_the_default_style_is_rich_on_a_terminal_and_lines_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool, style: str
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    settings = compose_settings("dataset=synthetic", "trainer=cpu")
    assert settings.progress_bar == "auto" and progress_style("auto") == style and progress_style("tqdm") == "tqdm"
    callbacks = make_trainer(settings, 1, [], tmp_path, label=LABEL).callbacks
    assert any(isinstance(c, EpochLines if style == "lines" else RichProgressBar) for c in callbacks)


def test_progress_lines_replace_lightnings_bar(tmp_path: Path) -> None:
    settings = compose_settings("dataset=synthetic", "trainer=cpu", "progress_bar=lines")
    trainer = make_trainer(settings, 1, [], tmp_path, label=LABEL)
    assert any(isinstance(c, EpochLines) for c in trainer.callbacks)
    assert not any(isinstance(c, (TQDMProgressBar, RichProgressBar)) for c in trainer.callbacks)
