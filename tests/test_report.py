"""The report: golden Markdown/CSV tables from fixed fake results, cell statistics, published numbers, plots, problem
files, the W&B upload and the sweep summary. Fast: no training (fake ``result.json`` files written here).

Regenerate the golden files after an intended format change:
``RETHINK_UPDATE_GOLDEN=1 pytest tests/test_report.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from PIL import Image

from rethink.results import plots, published, report, tables

GOLDEN = Path(__file__).parent / "golden" / "report"
SLIDES = Path("/work/shared/reference/rethinking-slides.md")

# ------------------------------------------------------------------------------------------------ fake results

RESNET56_WIDTHS = {f"layer{s}.{b}.conv1": 16 * 2 ** (s - 1) for s in (1, 2, 3) for b in range(9)}
VGG19_WIDTHS = {f"features.{i}": w for i, w in enumerate([64, 64, 128, 128] + [256] * 4 + [512] * 8)}

# (seed -> top1) per schedule; resnet56-A Scratch-B misses seed 3
L1_ACC = {
    "finetune": {1: 92.91, 2: 93.05, 3: 92.80},
    "scratch_e": {1: 92.70, 2: 93.10, 3: 92.95},
    "scratch_b": {1: 93.20, 2: 93.00},
    "lottery": {1: 92.60, 2: 92.85, 3: 92.70},
}
PRETRAIN = {1: 93.30, 2: 93.00, 3: 93.15}
SLIM_ACC = {"finetune": {1: 93.55, 2: 93.70, 3: 93.40}, "scratch_e": {1: 93.20, 2: 93.35, 3: 93.41}}
MAG_ACC = {"finetune": {1: 93.48, 2: 93.60, 3: 93.52}}
BEST_OFFSET = 0.1  # fake runs' best epoch is 0.1 above their final one (their pretrain stages' best = final)
LR = {"finetune": 0.001, "baseline": 0.1, "scratch_e": 0.1, "scratch_b": 0.1, "lottery": 0.1}  # the paper's
BASELINE_110 = {1: 93.25, 2: 93.05}
BASELINE_VGG19 = {1: 93.60, 2: 93.45, 3: 93.52}  # normal training: slimming's Unpruned column
L1_110B = {1: 93.50, 2: 93.40, 3: 93.70}


def fake(
    dataset: str,
    model: str,
    pruner: str,
    schedule: str,
    seed: int,
    top1: float,
    requested: dict[str, Any] | None = None,
    pretrain: float | None = None,
    params: int = 1000,
    achieved: dict[str, float] | None = None,
    widths: tuple[dict[str, int], dict[str, int]] | None = None,
    sparsity: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    lr: float | None = None,
    regularizer: dict[str, float] | None = None,
) -> dict[str, Any]:
    stages = []
    if pretrain is not None:
        acc = {"unit": "percent", "top1_final": pretrain, "top1_best": pretrain}
        stages += [{"stage": "pretrain", "key": f"p{seed}", "path": "/x", "status": "computed", "accuracy": acc}]
        stages[-1].update({"regularizer": regularizer} if regularizer else {})
    if schedule != "baseline":
        stages.append(
            {"stage": "retrain", "key": "r", "path": "/y", "status": "computed", "accuracy": {"top1_final": top1}}
        )
    pruning = None
    if pruner != "none" and schedule != "baseline":
        pruning = {"pruner": pruner, "requested": requested or {}}
        if achieved:
            pruning["achieved"] = {**achieved, "channels_pruned_fraction": 0.1, "flops_ratio": 1.5}
        if widths:
            pruning["widths"] = {"before": widths[0], "after": widths[1]}
        if sparsity:
            pruning["sparsity"] = sparsity
    return {
        "cell": {"dataset": dataset, "model": model, "pruner": pruner, "schedule": schedule, "seed": seed},
        "params": params,
        "flops": {"macs": 10, "paper": 21},
        "accuracy": {"unit": "percent", "top1_final": top1, "top1_best": top1 + BEST_OFFSET},
        "epochs": 160,
        "pruning": pruning,
        "budget": None,
        "stages": stages,
        "config": {
            "model": {"name": model, **(model_options or {})},
            "schedule": {"name": schedule, "lr": lr or LR.get(schedule, 0.1)},
        },
    }


def fake_results() -> list[dict[str, Any]]:
    out = []
    a = {"variant": "A", "stage_ratios": None, "layer_ratios": None, "skip": None}
    ach = {"params_pruned_fraction": 0.094, "flops_pruned_fraction": 0.104}
    after56 = {
        k: (v // 2 if k.startswith("layer1.") and int(k.split(".")[1]) % 2 == 0 else v)
        for k, v in RESNET56_WIDTHS.items()
    }
    for schedule, accs in L1_ACC.items():
        for seed, top1 in accs.items():
            pre = PRETRAIN[seed] if schedule in ("finetune", "lottery") else None
            out.append(
                fake("cifar10", "resnet56", "l1", schedule, seed, top1, a, pre, 770000, ach, (RESNET56_WIDTHS, after56))
            )
    for seed, top1 in L1_110B.items():
        b = {**a, "variant": "B"}
        out.append(
            fake(
                "cifar10",
                "resnet110",
                "l1",
                "scratch_e",
                seed,
                top1,
                b,
                None,
                1160000,
                {"params_pruned_fraction": 0.324, "flops_pruned_fraction": 0.386},
            )
        )
    for seed, top1 in BASELINE_110.items():
        out.append(fake("cifar10", "resnet110", "none", "baseline", seed, top1, params=1730000))
    slim = {"ratio": 0.7, "sparsity": None, "min_channels": 1, "on_empty": "keep_min"}
    for schedule, accs in SLIM_ACC.items():
        for seed, top1 in accs.items():
            after = {k: max(1, int(v * (0.2 + 0.1 * (i % 4)) + seed)) for i, (k, v) in enumerate(VGG19_WIDTHS.items())}
            frac = {"params_pruned_fraction": 0.88 + 0.001 * seed, "flops_pruned_fraction": 0.5}
            pre = 93.5 + 0.05 * seed if schedule == "finetune" else None
            out.append(
                fake(
                    "cifar10",
                    "vgg19",
                    "slimming",
                    schedule,
                    seed,
                    top1,
                    slim,
                    pre,
                    2300000,
                    frac,
                    (VGG19_WIDTHS, after),
                    model_options={"head": "linear", "width_multiplier": 1.0},
                    regularizer={"bn_sparsity": 1e-4},
                )
            )
    for seed, top1 in BASELINE_VGG19.items():
        options = {"head": "linear", "width_multiplier": 1.0}
        out.append(fake("cifar10", "vgg19", "none", "baseline", seed, top1, model_options=options, pretrain=top1))
    layers = {
        f"features.{i}": {"kept": 70 + i, "total": 100, "density": (70 + i) / 100, "sparsity": (30 - i) / 100}
        for i in range(8)
    }
    kept = sum(v["kept"] for v in layers.values())
    sparsity = {
        "total": {"kept": kept, "total": 800, "density": kept / 800, "sparsity": 1 - kept / 800},
        "layers": layers,
    }
    mag = {"ratio": 0.3, "scope": "global", "rounds": 1, "round_ratio": None}
    for seed, top1 in MAG_ACC["finetune"].items():
        out.append(
            fake(
                "cifar10",
                "vgg19_bn",
                "magnitude",
                "finetune",
                seed,
                top1,
                mag,
                93.5,
                14000000,
                {"params_pruned_fraction": 0.3, "flops_pruned_fraction": 0.2},
                (VGG19_WIDTHS, VGG19_WIDTHS),
                sparsity,
            )
        )
    return out


def write_results(root: Path, results: list[dict[str, Any]]) -> None:
    for i, result in enumerate(results):
        cell = result["cell"]
        run = root / f"{i}_{cell['dataset']}_{cell['model']}_{cell['pruner']}_{cell['schedule']}_seed{cell['seed']}"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("sweep")
    write_results(root, fake_results())
    out = root.parent / (root.name + "_report")
    code = report.main([str(root), "--out", str(out)])
    return root, out, code


def _md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]


# ---------------------------------------------------------------------------------------------------- tests


def test_golden_tables(built: tuple[Path, Path, int]) -> None:
    """Markdown and CSV tables byte for byte (format changes must update tests/golden/report deliberately)."""
    _, out, code = built
    assert code == 0
    produced = sorted(p.relative_to(out / "tables").as_posix() for p in (out / "tables").iterdir())
    assert produced == [
        "l1.csv",
        "l1.md",
        "magnitude.csv",
        "magnitude.md",
        "slimming.csv",
        "slimming.md",
        "unpruned.csv",
        "unpruned.md",
    ]
    if os.environ.get("RETHINK_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name in produced:
            (GOLDEN / name).write_text((out / "tables" / name).read_text())
    for name in produced:
        assert (out / "tables" / name).read_text() == (GOLDEN / name).read_text(), (
            f"{name} differs from tests/golden/report/{name}"
        )


def test_cells_are_mean_std_over_seeds(built: tuple[Path, Path, int]) -> None:
    _, out, _ = built
    rows = {(r["table"], r["model"], r["pruned"], r["column"]): r for r in csv.DictReader((out / "cells.csv").open())}
    for schedule, title in [
        ("finetune", "Fine-tuned"),
        ("scratch_e", "Scratch-E"),
        ("scratch_b", "Scratch-B"),
        ("lottery", "Lottery"),
    ]:
        values = [v + BEST_OFFSET for v in L1_ACC[schedule].values()]  # the report's default: best epoch
        row = rows[("l1", "resnet56", "A", title)]
        assert float(row["mean"]) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        assert int(row["n"]) == len(values)
    unpruned = rows[("l1", "resnet56", "A", "Unpruned")]
    assert float(unpruned["mean"]) == pytest.approx(statistics.mean(PRETRAIN.values()), abs=1e-4)
    md = _md_rows((out / "tables" / "l1.md").read_text())
    header, body = md[0], md[2:]
    a_row = next(r for r in body if r[1] == "resnet56" and r[2] == "A")
    ft = [v + BEST_OFFSET for v in L1_ACC["finetune"].values()]
    assert a_row[header.index("Fine-tuned")] == f"{statistics.mean(ft):.2f} ± {statistics.stdev(ft):.2f} (3)"
    # the incomplete Scratch-B cell is marked (2/3) with a footnote naming seed 3, not averaged silently
    sb = [v + BEST_OFFSET for v in L1_ACC["scratch_b"].values()]
    assert a_row[header.index("Scratch-B")] == f"{statistics.mean(sb):.2f} ± {statistics.stdev(sb):.2f} (2/3) [1]"
    assert (
        "[1] cifar10 resnet56 A, Scratch-B: seeds 3 missing (present: 1, 2)" in (out / "tables" / "l1.md").read_text()
    )
    assert rows[("l1", "resnet56", "A", "Scratch-B")]["missing_seeds"] == "3"
    # a row without a pretrain stage takes Unpruned from schedule=baseline runs, with a footnote saying so
    b_row = next(r for r in body if r[1] == "resnet110" and r[2] == "B")
    base = [v + BEST_OFFSET for v in BASELINE_110.values()]
    assert b_row[header.index("Unpruned")].startswith(
        f"{statistics.mean(base):.2f} ± {statistics.stdev(base):.2f} (2/3)"
    )
    assert "from schedule=baseline runs" in (out / "tables" / "l1.md").read_text()


def test_published_match_and_difference(built: tuple[Path, Path, int]) -> None:
    entry = published.lookup("cifar10", "resnet56", "l1", {"variant": "A"}, "scratch_e")
    assert entry is not None and (entry.mean, entry.std) == (92.96, 0.26)
    assert published.lookup("cifar10", "resnet56", "l1", {"variant": "C"}, "scratch_e") is None
    assert published.lookup("cifar10", "vgg19", "slimming", {"ratio": 0.7}, "scratch_b", {"head": "mlp"}) is None
    assert (
        published.lookup("cifar10", "vgg19", "slimming", {"ratio": 0.70000001}, "scratch_b", {"head": "linear"}).mean
        == 93.81
    )
    assert published.params_pruned_pct("cifar10", "resnet56", "l1", {"variant": "A"}) == 9.4
    _, out, _ = built
    md = _md_rows((out / "tables" / "l1.md").read_text())
    header, body = md[0], md[2:]
    a_row = next(r for r in body if r[1] == "resnet56" and r[2] == "A")
    ours = statistics.mean(L1_ACC["scratch_e"].values()) + BEST_OFFSET
    assert a_row[header.index("Scratch-E (paper, best epoch)")] == "92.96 ± 0.26"
    assert a_row[header.index("Scratch-E Δ")] == f"{ours - 92.96:+.2f}"
    assert a_row[header.index("Unpruned (paper, best epoch)")] == "93.14 ± 0.12"
    assert a_row[header.index("params pruned % (paper)")] == "9.4"
    cells = {(r["model"], r["pruned"], r["column"]): r for r in csv.DictReader((out / "cells.csv").open())}
    se = cells[("resnet56", "A", "Scratch-E")]
    assert float(se["paper_mean"]) == 92.96 and float(se["diff"]) == pytest.approx(ours - 92.96, abs=1e-4)


def test_published_file_is_consistent_with_the_slides() -> None:
    keys = [(e.dataset, e.model, e.pruner, e.setting, e.schedule, e.model_options) for e in published.entries()]
    assert len(keys) == len(set(keys))
    if not SLIDES.is_file():
        pytest.skip(f"{SLIDES} not present")
    text = SLIDES.read_text()
    for e in published.entries():  # every mean (with its std) is printed in the slides
        if e.std is None:
            assert re.search(rf"(<b>)?{e.mean:.2f}(</b>)?\s", text), e
        else:
            assert re.search(rf"(<b>)?{e.mean:.2f}(</b>)? ?\( \$\\pm {e.std:.2f}\$ \)", text), e


def test_plots_for_slimming_and_magnitude(built: tuple[Path, Path, int]) -> None:
    _, out, _ = built
    for name, size in [
        ("widths_slimming_cifar10_vgg19_70.png", plots.WIDTHS_SIZE),
        ("widths_l1_cifar10_resnet56_A.png", plots.WIDTHS_SIZE),
        ("sparsity_magnitude_cifar10_vgg19_bn_30.png", plots.WIDTHS_SIZE),
        ("accuracy_params_cifar10_vgg19.png", plots.ACCURACY_SIZE),
    ]:
        path = out / "plots" / name
        assert path.is_file() and path.stat().st_size > 1000, sorted(p.name for p in (out / "plots").iterdir())
        with Image.open(path) as image:
            assert image.size == size
    text = (out / "report.md").read_text()
    assert (
        "![Per-layer channels: cifar10 vgg19 slimming 70%" in text
        and "(plots/sparsity_magnitude_cifar10_vgg19_bn_30.png)" in text
    )
    assert "### Network Slimming" in text


def test_problem_files_are_listed_and_the_rest_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "runs"
    write_results(root, fake_results()[:2])
    bad = {
        "broken/result.json": "{not json",
        "foreign/result.json": json.dumps({"loss": 1.0}),
        "partial/result.json": json.dumps({"cell": {"dataset": "cifar10"}, "accuracy": {}}),
        "failed/result.json": json.dumps({**fake_results()[0], "accuracy": {"top1_final": None}}),
        "list/result.json": "[1, 2]",
    }
    for name, content in bad.items():
        (root / name).parent.mkdir(parents=True)
        (root / name).write_text(content)
    out = tmp_path / "out"
    assert report.main([str(root), str(tmp_path / "missing"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    err = capsys.readouterr().err
    for name, reason in [
        ("broken", "unreadable"),
        ("foreign", "foreign: not a rethink result.json"),
        ("partial", "partial: missing cell.model, cell.pruner, cell.schedule, cell.seed, accuracy.top1_final"),
        ("failed", "failed: accuracy.top1_final is None"),
        ("list", "foreign: a JSON list"),
    ]:
        line = f"{root / name / 'result.json'}: {reason}"
        assert line in text and line in err
    assert f"{tmp_path / 'missing'}: no such file or directory" in text
    assert (out / "tables" / "l1.md").is_file()
    assert report.main([str(root / "broken"), "--out", str(tmp_path / "none")]) == 1  # nothing readable


def test_wandb_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    root = tmp_path / "runs"
    write_results(root, [r for r in fake_results() if r["cell"]["pruner"] == "slimming"])
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out), "--wandb"]) == 0
    assert wandb.run is None  # finished
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb")) and (runs[0] / "files" / "report.md").is_file()
    assert list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert list((runs[0] / "files" / "media" / "table").rglob("*.table.json"))


def test_sweep_summary_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_results(tmp_path, fake_results())
    report.SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    printed = capsys.readouterr().out
    assert "mean ± std (n seeds)" in printed and "### L1-norm filter pruning" in printed
    assert "| cifar10 | resnet56 | A |" in printed


def test_sparsity_trained_large_model_is_not_the_unpruned_column(tmp_path: Path) -> None:
    """Slimming pretrains with the BN penalty: its accuracy is its own column, Unpruned comes from baseline runs of
    the same model (and without them the table says which sweep to add)."""
    slimming = [r for r in fake_results() if r["cell"]["pruner"] == "slimming"]
    baselines = [r for r in fake_results() if r["cell"]["model"] == "vgg19" and r["cell"]["schedule"] == "baseline"]
    (with_baselines,) = [t for t in tables.build_tables(_tagged(slimming + baselines)) if t.name == "slimming"]
    (row,) = with_baselines.rows
    assert row.cells["unpruned"].values == pytest.approx({k: v + BEST_OFFSET for k, v in BASELINE_VGG19.items()})
    assert row.cells["sparsity_trained"].values == {seed: 93.5 + 0.05 * seed for seed in SLIM_ACC["finetune"]}
    (alone,) = tables.build_tables(_tagged(slimming))
    assert "unpruned" not in alone.columns and "sparsity_trained" in alone.columns
    assert any("no Unpruned accuracy" in note and "schedule=baseline" in note for note in alone.notes)


def _tagged(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "_file": f"run{i}"} for i, r in enumerate(results)]
