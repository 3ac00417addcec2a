"""Verdicts of the report: Welch's t-test of Scratch-B/E against Fine-tuned per cell and of automatic against uniform
pruning at matched parameters (Figure 3), their summaries beside the paper's claims, verdicts.json. Fast: fake
``result.json`` files, the report run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import ttest_ind

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


def test_figure3_pairs_each_method_with_the_uniform_control_of_its_own_params(tmp_path: Path) -> None:
    """The pruners' own curves: slimming and global magnitude pruning against the uniform control of the same ratio,
    guided pruning (also transferred) and guided sparsification against the uniform control matched to them; a
    uniform control of another decision, or of none, at the same ratio is not their pair."""

    def at(pruner: str, requested: dict[str, Any], values: list[float], **kwargs: Any) -> list[dict[str, Any]]:
        return cells({kwargs.get("schedule", "scratch_e"): values}, pruner=pruner, requested=requested, model=model)

    own, vgg16 = {"model": None, "dataset": None, "seed": None}, {"model": "vgg16", "dataset": "cifar10", "seed": None}
    model, slim = "vgg19", {"ratio": 0.5, "sparsity": None}
    results = at("slimming", slim, [93.5, 93.6, 93.7])
    results += at("slimming", slim, [90.0, 90.1], schedule="scratch_b")  # no uniform B
    results += at("slimming", {"ratio": 0.7}, [93.4, 93.5])  # no uniform at 70%
    results += at("uniform", {"ratio": 0.5, "reference": None, "match": "slimming"}, [92.5, 92.6, 92.4])
    results += at("uniform", {"ratio": 0.5, "reference": None, "match": "channels"}, [99.0, 99.0])  # level None
    results += at("guided", {"ratio": 0.5, "source": own}, [92.4, 92.6])
    results += at("uniform", {"ratio": 0.5, "match": "guided", "source": own}, [92.0, 92.2])
    results += at("guided", {"ratio": 0.5, "source": vgg16}, [93.0, 93.1])
    results += at("uniform", {"ratio": 0.5, "match": "guided", "source": vgg16}, [91.0, 91.1])
    results += at("guided", {"ratio": 0.3, "source": own}, [94.0, 94.1])  # no control of its params
    model = "vgg19_bn"
    results += at("magnitude", {"ratio": 0.5, "scope": "global", "rounds": 1}, [93.0, 93.1])
    results += at("magnitude", {"ratio": 0.5, "scope": "layer", "rounds": 1}, [92.0, 92.1])
    results += at("guided_sparsity", {"ratio": 0.5}, [92.8, 92.9])
    results += at("uniform_sparsity", {"ratio": 0.5}, [93.5, 93.6])
    found = run_report(tmp_path, results)
    figure3 = [c for c in found["comparisons"] if c["table"] == verdicts.FIGURE3]
    assert [(c["model"], c["setting"], c["a"], c["b"], c["n_a"], c["n_b"], c["verdict"]) for c in figure3] == [
        ("vgg19", "channels 50%, Scratch-E", "automatic", "uniform", 3, 3, "better"),
        ("vgg19", "channels 50%, Scratch-E", "guided", "uniform", 2, 2, "no significant difference"),
        ("vgg19", "channels 50%, Scratch-E", "transferred guided", "uniform", 2, 2, "better"),
        ("vgg19_bn", "weights 50%, Scratch-E", "automatic", "uniform", 2, 2, "better"),
        ("vgg19_bn", "weights 50%, Scratch-E", "guided", "uniform", 2, 2, "worse"),
    ]
    assert [c["mean_b"] - BEST for c in figure3] == pytest.approx([92.5, 92.1, 91.05, 92.05, 93.55])  # their pairs
    summaries = {s["a"]: s for s in found["summaries"] if s["table"] == verdicts.FIGURE3}
    assert summaries["automatic"]["text"] == "automatic ≥ uniform in 2 of 2 cells (2 significantly better)"
    assert summaries["guided"]["text"] == (
        "guided ≥ uniform in 1 of 2 cells (1 significantly worse: cifar10 vgg19_bn weights 50%, Scratch-E)"
    )
    assert summaries["automatic"]["claim"]["source"].startswith("Figure 3")


def test_identical_constant_samples_are_no_significant_difference() -> None:
    same = verdicts.Comparison("t", "d", "m", "s", "a", "b", [93.0, 93.0], [93.0, 93.0], 0.05)
    assert (same.verdict, same.p_value) == ("no significant difference", None)


def test_a_report_without_comparisons_says_so(tmp_path: Path) -> None:
    found = run_report(tmp_path, cells({"baseline": [93.0, 93.2]}, pruner="none", requested={}))
    assert (found["comparisons"], found["summaries"]) == ([], [])
    assert "No cell has both sides of a comparison" in (tmp_path / "report" / "report.md").read_text()
