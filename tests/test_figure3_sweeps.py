"""Figure 3 and Sec. 5 from the command line: the quick sweeps run end to end, share the source cells' stages, and
the report writes the parameter-efficiency curves, the stage-ratio plot and the verdicts — checked through the data
each plot was made from, not its pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_sweeps import results, run

from rethink.results.curves import method

# sweep -> (curve kind, the curves its report must draw)
SWEEPS = {
    "figure3_guided": ("channels", {"automatic", "uniform", "guided", "transferred guided"}),
    "figure3_slimming": ("channels", {"automatic", "uniform"}),
    "figure3_weight_level": ("weights", {"automatic", "uniform", "guided"}),
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

    report = run("rethink.report", str(sweep_dir), "--out", str(report_dir))
    assert report.returncode == 0, report.stderr[-3000:]
    kind, roles = SWEEPS[name]
    stem = report_dir / "plots" / f"curves_synthetic_vgg19{'_bn' if kind == 'weights' else ''}_{kind}_scratch_e"
    assert stem.with_suffix(".png").stat().st_size > 0
    data = json.loads(stem.with_suffix(".json").read_text())
    assert {curve["role"] for curve in data["curves"]} == roles
    ratios = sorted({r["pruning"]["requested"]["ratio"] for r in found})
    for curve in data["curves"]:  # one point per ratio, 2 seeds each, drawn from the results' own numbers
        assert len(curve["points"]) == len(ratios) and all(p["n"] == 2 for p in curve["points"])
        params = [p["params"] for p in curve["points"]]
        assert params == sorted(params)
        for point in curve["points"]:
            mine = [
                r["params"]
                for r in found
                if method(r)[0].role == curve["role"] and point["setting"].startswith(f"{100 * _ratio(r):g}%")
            ]
            assert mine and point["params"] == pytest.approx(sum(mine) / len(mine)), point
    stages = json.loads(next((report_dir / "plots").glob(f"stage_ratios_*_{kind}.json")).read_text())
    assert {line["role"] for line in stages["lines"]} == roles
    assert all(line["sizes"][0] == 32 and line["n"] == 2 for line in stages["lines"])
    verdicts = json.loads((report_dir / "verdicts.json").read_text())
    pairs = [(v["table"], v["a"], v["b"]) for v in verdicts["comparisons"]]
    figure3 = [v for v, pair in zip(verdicts["comparisons"], pairs) if pair == ("figure3", "automatic", "uniform")]
    assert len(figure3) == len(ratios) and all(v["n_a"] == v["n_b"] == 2 for v in figure3)  # matched at each ratio
    assert "## Verdicts" in (report_dir / "report.md").read_text()


def _ratio(result: dict) -> float:
    return result["pruning"]["requested"]["ratio"]
