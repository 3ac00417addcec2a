"""Figure 3 and Sec. 5 from the command line: the quick sweeps run end to end, share the source cells' stages, and
the report writes the parameter-efficiency curves, the stage-ratio plot and the verdicts — checked through the data
each plot was made from, not its pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_sweeps import results, run

from rethink.pruning.naming import pruned_setting, setting_label

# sweep -> (curve kind, the curves its report must draw, {role compared with uniform: the decision it matches})
SWEEPS = {
    "figure3_guided": (
        "channels",
        {"automatic", "uniform", "guided", "transferred guided"},
        {"automatic": "automatic", "guided": "guided", "transferred guided": "transferred guided from vgg16"},
    ),
    "figure3_slimming": ("channels", {"automatic", "uniform"}, {"automatic": "automatic"}),
    "figure3_weight_level": (
        "weights",
        {"automatic", "uniform", "guided", "transferred guided"},
        {"automatic": "automatic", "guided": "guided", "transferred guided": "transferred guided from vgg16"},
    ),
}


@pytest.mark.parametrize(
    "name, overrides",
    [
        # every channel method, transferred guided pruning included, at one ratio: in the default suite
        ("figure3_guided", ("pruner.ratio=0.3",)),
        pytest.param("figure3_guided", (), marks=pytest.mark.slow),
        pytest.param("figure3_slimming", (), marks=pytest.mark.slow),
        pytest.param("figure3_weight_level", (), marks=pytest.mark.slow),
    ],
)
def test_quick_figure3_sweep_draws_its_curves(name: str, overrides: tuple[str, ...], tmp_path: Path) -> None:
    sweep_dir, report_dir = tmp_path / "sweep", tmp_path / "report"
    proc = run(
        "rethink.main",
        f"experiment=paper/quick/{name}",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.artifact_dir={tmp_path / 'artifacts'}",
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(sweep_dir)
    jobs = json.loads((sweep_dir / "cells.json").read_text())
    assert len(found) == len(jobs)
    # a source cell's stages are computed once: every (stage, key) computed by exactly one cell
    computed = [(s["stage"], s["key"]) for r in found for s in r["stages"] if s["status"] == "computed"]
    assert len(computed) == len(set(computed))
    if name == "figure3_guided":
        sourced = [
            s for r in found if r["cell"]["pruner"] in ("guided", "uniform") for s in r["stages"] if "source" in s
        ]
        assert {s["source"]["model"] for s in sourced} == {"vgg19", "vgg16"}
    if name == "figure3_weight_level":  # the union's transfer: both methods follow VGG-16's global magnitude decisions
        sourced = [(r["cell"]["pruner"], s["source"]["model"]) for r in found for s in r["stages"] if "source" in s]
        assert {pruner for pruner, _ in sourced} == {"guided_sparsity", "uniform_sparsity"}
        assert {model for _, model in sourced} == {"vgg16"}

    report = run("rethink.report", str(sweep_dir), "--out", str(report_dir))
    assert report.returncode == 0, report.stderr[-3000:]
    kind, roles, matched = SWEEPS[name]
    stem = report_dir / "plots" / f"curves_synthetic_vgg19{'_bn' if kind == 'weights' else ''}_{kind}_scratch_e"
    assert stem.with_suffix(".png").stat().st_size > 0
    data = json.loads(stem.with_suffix(".json").read_text())
    assert {curve["role"] for curve in data["curves"]} == roles
    ratios = sorted({r["pruning"]["requested"]["ratio"] for r in found})
    for curve in data["curves"]:  # one point per ratio (uniform: per ratio and matched decision), 2 seeds each,
        uniform = curve["role"] == "uniform"  # drawn from the results' own numbers
        assert len(curve["points"]) == (len(matched) if uniform else 1) * len(ratios)
        assert all(p["n"] == 2 for p in curve["points"])
        expected = set(matched.values()) if uniform else {matched[curve["role"]]}
        assert {p["matched"] for p in curve["points"]} == expected
        params = [p["params"] for p in curve["points"]]
        assert params == sorted(params)
        for point in curve["points"]:
            mine = [
                r["params"]
                for r in found
                if r["cell"]["pruner"] == point["pruner"] and setting_label(pruned_setting(r)) == point["setting"]
            ]
            assert mine and point["params"] == pytest.approx(sum(mine) / len(mine)), point
    stages = json.loads(next((report_dir / "plots").glob(f"stage_ratios_*_{kind}.json")).read_text())
    assert {line["role"] for line in stages["lines"]} == roles
    assert all(line["sizes"][0] == 32 and line["n"] == 2 for line in stages["lines"])
    verdicts = json.loads((report_dir / "verdicts.json").read_text())
    figure3 = [v for v in verdicts["comparisons"] if v["table"] == "figure3"]
    assert {v["b"] for v in figure3} == {"uniform"}  # each method against the uniform control of its own params
    for a in matched:  # at each ratio: automatic, guided pruning (also transferred), guided sparsification
        mine = [v for v in figure3 if v["a"] == a]
        assert len(mine) == len(ratios) and all(v["n_a"] == v["n_b"] == 2 for v in mine), a
    assert len(figure3) == len(matched) * len(ratios)
    assert "## Verdicts" in (report_dir / "report.md").read_text()
