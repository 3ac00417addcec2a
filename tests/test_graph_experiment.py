"""experiment=modern_cifar10 (dry run; its quick variant end to end in the slow suite) and experiment=demo_modern
(with the suite's tiny overrides): the graph family's cells in sweeps, with the report's tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_main, run_sweep


def test_modern_cifar10_dry_run_lists_every_cell_with_params_flops_and_convention() -> None:
    lines = run_main("experiment=modern_cifar10", "dry_run=true").stdout.splitlines()
    assert lines[0].split() == ["job", "cell", "params", "FLOPs", "stages", "(epochs)", "stored", "FLOPs", "by"]
    rows = [line.split() for line in lines[1:] if line.split() and line.split()[0].isdigit()]
    assert len(rows) == 3 * 2 * 3 * 3
    archs = {row[1].split("/")[1] for row in rows}
    assert archs == {f"torchvision.{arch}" for arch in ("resnet18", "mobilenet_v2", "efficientnet_b0")}
    for row in rows:
        assert row[-1] == "torch_flop_counter"
        seed = next(i for i, token in enumerate(row) if token.startswith("seed="))
        params, flops = row[seed + 1].lstrip("≤"), row[seed + 2].lstrip("≤")
        assert params[-1] in "KM" and flops[-1] in "MG", row  # every cell has its params and FLOPs
    assert "(torch_flop_counter convention)" in "\n".join(lines)


@pytest.mark.slow  # ~17 s: make demo-modern runs it too; the default suite keeps the graph cells' in-process tests
def test_demo_modern_runs_and_prints_the_table(tmp_path: Path) -> None:
    tiny = ("pretrain.epochs=2", "trainer.limit_train_batches=2")
    out = tmp_path / "sweep"
    proc = run_main("experiment=demo_modern", *tiny, f"hydra.sweep.dir={out}", f"paths.artifact_dir={tmp_path / 'art'}")
    assert "rethink: 3 cells: 3 done" in proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| digits | torchvision.mobilenet_v3_small |")]
    assert rows and rows[0].startswith("| digits | torchvision.mobilenet_v3_small | 50% |")
    assert rows[0].count("(1)") == 5  # Unpruned, Pruned, Fine-tuned, Scratch-E, Scratch-B


@pytest.mark.slow
def test_quick_modern_cifar10_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    proc, out = run_sweep("quick/modern_cifar10", tmp_path)
    assert "rethink: 18 cells: 18 done" in proc.stderr
    for arch in ("resnet18", "mobilenet_v2", "efficientnet_b0"):
        for pruned in ("50%", "40%"):
            rows = [line for line in proc.stdout.splitlines() if line.startswith(f"| synthetic | torchvision.{arch} |")]
            assert any(f"| {pruned}" in row and row.count("(1)") >= 4 for row in rows), (arch, pruned, proc.stdout)
    results = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
    assert len(results) == 18 and {r["flops"]["convention"] for r in results} == {"torch_flop_counter"}
