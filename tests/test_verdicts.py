"""Verdicts of the report: Welch's t-test of Scratch-B/E against Fine-tuned per cell and of automatic against uniform
pruning at matched parameters (Figure 3), their summaries beside the paper's claims, verdicts.json. Fast: fake
``result.json`` files, the report run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import ttest_ind

from rethink.pruning import Curve, random, uniform
from rethink.results import report, verdicts

BEST = 0.1  # each fake run's best epoch is this much above its final one


def fake(
    schedule: str,
    seed: int,
    top1: float,
    pruner: str = "l1",
    requested: dict[str, Any] | None = None,
    model: str = "resnet56",
) -> dict[str, Any]:
    requested = {"variant": "A"} if requested is None else requested
    return {
        "cell": {"dataset": "cifar10", "model": model, "pruner": pruner, "schedule": schedule, "seed": seed},
        "accuracy": {"unit": "percent", "top1_final": top1, "top1_best": top1 + BEST},
        "pruning": {"pruner": pruner, "requested": requested},
        "stages": [],
        "config": {"model": {"name": model}, "schedule": {"name": schedule}},
    }


def cells(values: dict[str, list[float]], **kwargs: Any) -> list[dict[str, Any]]:
    """One result per (schedule, seed) of ``values`` (seeds 1, 2, ...)."""
    return [fake(s, seed, v, **kwargs) for s, vs in values.items() for seed, v in enumerate(vs, 1)]


def run_report(tmp_path: Path, results: list[dict[str, Any]], *args: str) -> dict[str, Any]:
    root, out = tmp_path / "runs", tmp_path / "report"
    for i, result in enumerate(results):
        (root / str(i)).mkdir(parents=True)
        (root / str(i) / "result.json").write_text(json.dumps(result))
    assert report.main([str(root), "--out", str(out), *args]) == 0
    return json.loads((out / "verdicts.json").read_text())


def by_pair(found: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(c["setting"], c["a"], c["b"]): c for c in found["comparisons"]}


SEPARATED = {"finetune": [92.0, 92.1, 92.2], "scratch_b": [93.0, 93.1, 93.2], "scratch_e": [91.0, 91.2, 91.1]}


def test_separated_samples_are_better_or_worse_with_scipys_p_value(tmp_path: Path) -> None:
    found = by_pair(run_report(tmp_path, cells(SEPARATED)))
    b, e = found[("A", "Scratch-B", "Fine-tuned")], found[("A", "Scratch-E", "Fine-tuned")]
    assert (b["verdict"], e["verdict"]) == ("better", "worse")
    for got, scratch in ((b, "scratch_b"), (e, "scratch_e")):
        best = [v + BEST for v in SEPARATED[scratch]], [v + BEST for v in SEPARATED["finetune"]]  # default: best
        assert got["p_value"] == pytest.approx(ttest_ind(*best, equal_var=False).pvalue, abs=1e-12)
        assert got["mean_a"] == pytest.approx(sum(best[0]) / 3) and got["n_a"] == got["n_b"] == 3


def test_overlapping_samples_show_no_significant_difference_and_alpha_is_applied(tmp_path: Path) -> None:
    values = {"finetune": [92.0, 92.6, 92.3], "scratch_b": [92.2, 92.9, 92.5]}
    p = ttest_ind(values["scratch_b"], values["finetune"], equal_var=False).pvalue
    assert 0.05 < p < 0.5
    (found,) = run_report(tmp_path / "a", cells(values), "--metric", "final")["comparisons"]
    assert found["verdict"] == "no significant difference" and found["alpha"] == 0.05
    assert found["p_value"] == pytest.approx(p, abs=1e-12)  # final epoch: the values themselves
    (loose,) = run_report(tmp_path / "b", cells(values), "--alpha", "0.5")["comparisons"]
    assert loose["verdict"] == "better" and loose["alpha"] == 0.5


def test_alpha_outside_zero_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert report.main([str(tmp_path), "--alpha", "5"]) == 2
    assert "--alpha=5.0 is not a significance level" in capsys.readouterr().err


def test_one_seed_needs_two_while_the_table_is_written(tmp_path: Path) -> None:
    found = run_report(tmp_path, cells({"finetune": [92.0, 92.1], "scratch_b": [93.0]}))
    (only,) = found["comparisons"]
    assert (only["verdict"], only["p_value"], only["n_a"], only["std_a"]) == ("needs ≥2 seeds", None, 1, None)
    assert found["summaries"][0]["text"] == "Scratch-B vs Fine-tuned: not tested (1 cell needs ≥2 seeds)"
    table = (tmp_path / "report" / "tables" / "l1.md").read_text()
    assert "| cifar10 | resnet56 | A |" in table and "93.10 (1/2)" in table


def test_verdicts_json_is_complete_and_report_md_has_the_section(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    variant_b = cells({"finetune": [92.0, 92.1, 92.2], "scratch_b": [91.0, 91.2, 91.1]}, requested={"variant": "B"})
    found = run_report(tmp_path, cells(SEPARATED) + variant_b)
    assert (found["alpha"], found["metric"]) == (0.05, "best") and "Welch" in found["test"]
    keys = {"table", "dataset", "model", "setting", "a", "b", "mean_a", "mean_b", "std_a", "std_b", "n_a", "n_b"}
    keys |= {"difference", "p_value", "alpha", "verdict"}
    assert all(set(c) == keys for c in found["comparisons"]) and len(found["comparisons"]) == 3
    summaries = {s["a"]: s for s in found["summaries"]}
    assert summaries["Scratch-B"]["text"] == (
        "Scratch-B ≥ Fine-tuned in 1 of 2 cells (1 significantly better; 1 significantly worse: cifar10 resnet56 B)"
    )
    worse = "Scratch-E ≥ Fine-tuned in 0 of 1 cells (1 significantly worse: cifar10 resnet56 A)"
    assert summaries["Scratch-E"]["text"] == worse
    claim = summaries["Scratch-B"]["claim"]
    assert claim["source"] == "Table 1" and "Scratch-B is above Fine-tuned in every row" in claim["claim"]
    text = (tmp_path / "report" / "report.md").read_text()
    section = text[text.index("## Verdicts") :]
    assert "α = 0.05" in section and summaries["Scratch-B"]["text"] in section and "Paper (Table 1):" in section
    assert (
        "| cifar10 | resnet56 | B | Scratch-B vs Fine-tuned | 91.20 ± 0.10 (3) | 92.20 ± 0.10 (3) | -1.00 |" in section
    )
    assert summaries["Scratch-B"]["text"] in capsys.readouterr().out  # printed after the tables


def test_figure3_pairs_automatic_and_guided_with_uniform_at_the_same_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def uniform_curve(cls, requested):  # matched to slimming 50% by its reference; a plain ratio matches no level
        return Curve("channels", "uniform", 0.5 if requested.get("reference") else None)

    monkeypatch.setattr(uniform.Uniform, "curve", classmethod(uniform_curve))
    monkeypatch.setattr(random.Random, "curve", classmethod(lambda cls, requested: Curve("channels", "guided", 0.5)))
    slim, model = {"ratio": 0.5, "sparsity": None}, "vgg19"
    results = cells({"scratch_e": [93.5, 93.6, 93.7]}, pruner="slimming", requested=slim, model=model)
    results += cells({"scratch_b": [90.0, 90.1]}, pruner="slimming", requested=slim, model=model)  # no uniform B
    results += cells({"scratch_e": [93.4, 93.5]}, pruner="slimming", requested={"ratio": 0.7}, model=model)
    matched = {"ratio": None, "reference": "/runs/slim50/spec.json"}
    results += cells({"scratch_e": [92.5, 92.6, 92.4]}, pruner="uniform", requested=matched, model=model)
    results += cells({"scratch_e": [99.0, 99.0]}, pruner="uniform", requested={"ratio": 0.5}, model=model)  # level None
    results += cells({"scratch_e": [92.4, 92.6]}, pruner="random", requested={"ratio": 0.5}, model=model)
    found = run_report(tmp_path, results)
    figure3 = [c for c in found["comparisons"] if c["table"] == verdicts.FIGURE3]
    assert [(c["setting"], c["a"], c["b"], c["n_a"], c["n_b"]) for c in figure3] == [
        ("channels 50%, Scratch-E", "automatic", "uniform", 3, 3),
        ("channels 50%, Scratch-E", "guided", "uniform", 2, 3),
    ]
    assert [c["verdict"] for c in figure3] == ["better", "no significant difference"]
    assert figure3[0]["mean_b"] == pytest.approx(92.5 + BEST)
    summary = next(s for s in found["summaries"] if s["table"] == verdicts.FIGURE3 and s["a"] == "automatic")
    assert summary["text"] == "automatic ≥ uniform in 1 of 1 cells (1 significantly better)"
    assert summary["claim"]["source"].startswith("Figure 3")


def test_identical_constant_samples_are_no_significant_difference() -> None:
    same = verdicts.Comparison("t", "d", "m", "s", "a", "b", [93.0, 93.0], [93.0, 93.0], 0.05)
    assert (same.verdict, same.p_value) == ("no significant difference", None)


def test_a_report_without_comparisons_says_so(tmp_path: Path) -> None:
    found = run_report(tmp_path, cells({"baseline": [93.0, 93.2]}, pruner="none", requested={}))
    assert (found["comparisons"], found["summaries"]) == ([], [])
    assert "No cell has both sides of a comparison" in (tmp_path / "report" / "report.md").read_text()
