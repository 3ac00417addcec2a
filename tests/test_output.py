"""What a run prints and logs: Lightning's own lines only with ``verbose=true``."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.training.trainer import make_trainer

FAST = ("dataset=synthetic", "model=vgg11", "model.width_multiplier=0.125", "trainer=cpu", "pretrain.epochs=1")
LOGGING_INTERVAL = "The number of training batches (8) is smaller than the logging interval"


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
