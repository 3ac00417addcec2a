"""``make demo`` (``experiment=demo``) end to end with the suite's tiny overrides: it prints a line per epoch and per
cell while it runs, and the result table at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

TINY = ("pretrain.epochs=2", "trainer.limit_train_batches=2", "seed=1")


def test_the_demo_shows_its_progress_and_prints_the_table(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "rethink.main", "experiment=demo", *TINY]
    command += [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.artifact_dir={tmp_path / 'artifacts'}"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # progress: a line per epoch of every stage (cell, stage, 1-based epoch, test top-1) and per cell
    for stage, epochs in (("finetune seed 1 | pretrain", 2), ("scratch_e seed 1 | retrain", 2)):
        for epoch in range(1, epochs + 1):
            assert f"rethink: digits/vgg16/l1 A/{stage} | epoch {epoch}/{epochs}  " in proc.stderr, proc.stderr
    assert "| finetune seed 1 | prune  test top-1 " in proc.stderr.replace("/finetune", " | finetune")
    assert proc.stderr.count(" done ") + proc.stderr.count(" reused ") >= 3
    assert "rethink: 3 cells: 3 done" in proc.stderr
    # the table: the L1-norm row of the demo with the three retraining columns
    table = [line for line in proc.stdout.splitlines() if line.startswith("| digits | vgg16 | A |")]
    assert len(table) == 1, proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| dataset | model | pruned |"))
    for column in ("Unpruned", "Pruned (before retraining)", "Fine-tuned", "Scratch-E", "Scratch-B"):
        assert f"| {column} |" in header
    assert table[0].count("(1)") == 5  # one seed in each of the five columns
