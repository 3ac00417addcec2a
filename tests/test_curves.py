"""The report's Figure 3 views (rethink/results/curves.py): parameter-efficiency curves and kept ratio per stage,
checked through the JSON data written beside each PNG. Fast: synthetic results, no training."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Mapping

import pytest
from PIL import Image

from rethink.pruning import PRUNERS, Curve, Pruner
from rethink.pruning.uniform import Uniform
from rethink.results import comparison, curves, report

BEST = 0.5  # top1_best = top1_final + BEST: the report's default metric is the best epoch
SIZES = [32, 16, 8, 4, 2, 1]
# setting -> seed -> (final top-1, params, kept per stage)
SLIMMING = {
    0.5: {1: (93.0, 5_000_000, [0.9, 0.8, 0.6, 0.3, 0.2, 1.0]), 2: (93.4, 5_200_000, [0.8, 0.8, 0.5, 0.4, 0.2, 1.0])},
    0.7: {1: (92.5, 2_000_000, [0.8, 0.6, 0.3, 0.1, 0.1, 1.0]), 2: (92.1, 2_100_000, [0.7, 0.5, 0.4, 0.1, 0.1, 1.0])},
}
UNIFORM = {0.5: {1: (92.8, 5_100_000, [0.5] * 5 + [1.0]), 2: (92.6, 5_100_000, [0.5] * 5 + [1.0])}}
GUIDED = {1: (93.1, 4_900_000), 2: (93.3, 4_900_000)}
TRANSFERRED = {1: (92.9, 5_000_000), 2: (92.7, 5_000_000)}
MAGNITUDE = {  # (ratio, scope) -> seed -> (top-1, params)
    (0.3, "global"): {1: (93.6, 14_000_000), 2: (93.5, 14_000_000)},
    (0.8, "global"): {1: (93.2, 4_000_000), 2: (93.0, 4_000_000)},
    (0.8, "layer"): {1: (92.0, 4_000_000), 2: (92.4, 4_000_000)},
}
BASELINE = {1: (93.7, 20_000_000), 2: (93.9, 20_000_000)}
SLIMMING_LABEL = "automatic — Network Slimming (Liu et al., 2017)"
MAGNITUDE_LABEL = "automatic — Non-structured weight pruning (Han et al., 2015)"


class FakeGuided(Pruner):
    """Stands for the guided pruner: transferred when its source is another model or data set."""

    name = "fake_guided"

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve:
        role = "transferred guided" if requested["source"]["model"] != "vgg19" else "guided"
        return Curve("channels", role, requested["ratio"])


def fake(pruner: str, seed: int, top1: float, params: int, requested: dict[str, Any] | None = None, **kw) -> dict:
    schedule = kw.get("schedule", "scratch_e" if pruner != "none" else "baseline")
    pruning = None
    if pruner != "none":
        pruning = {"pruner": pruner, "requested": requested or {}}
        if kw.get("kept"):
            pruning["stage_ratios"] = {"unit": "channels", "sizes": SIZES, "kept": kw["kept"]}
        if kw.get("fraction"):
            pruning["achieved"] = {"params_pruned_fraction": kw["fraction"]}
    stages = []
    if kw.get("pretrain"):  # normal training (no regularizer): the Unpruned column
        accuracy = {"top1_final": kw["pretrain"], "top1_best": kw["pretrain"] + BEST}
        stages.append({"stage": "pretrain", "accuracy": accuracy})
    return {
        "cell": {"dataset": "cifar10", "model": "vgg19", "pruner": pruner, "schedule": schedule, "seed": seed},
        "params": params,
        "accuracy": {"unit": "percent", "top1_final": top1, "top1_best": top1 + BEST},
        "pruning": pruning,
        "stages": stages,
        "config": {"model": {"name": "vgg19"}, "schedule": {"name": schedule, "lr": kw.get("lr", 0.1)}},
        "_file": f"/runs/{pruner}/{schedule}/{seed}/result.json",
    }


def synthetic() -> list[dict[str, Any]]:
    out = []
    for ratio, seeds in SLIMMING.items():
        for seed, (top1, params, kept) in seeds.items():
            out.append(fake("slimming", seed, top1, params, {"ratio": ratio}, kept=kept))
    out.append(fake("slimming", 1, 50.0, 1, {"ratio": 0.5}))  # a second run of seed 1: the first counts, as in tables
    for seed, (top1, params, kept) in SLIMMING[0.7].items():  # fine-tuned: same pruned models, another figure
        out.append(fake("slimming", seed, top1 + 1, params, {"ratio": 0.7}, kept=kept, schedule="finetune"))
    for seed, (top1, params, kept) in UNIFORM[0.5].items():
        out.append(fake("uniform", seed, top1, params, {"ratio": 0.5}, kept=kept))
    for seed, (top1, params) in GUIDED.items():
        out.append(fake("fake_guided", seed, top1, params, {"ratio": 0.5, "source": {"model": "vgg19"}}))
    for seed, (top1, params) in TRANSFERRED.items():
        source = {"model": "vgg16", "dataset": "cifar100"}
        out.append(fake("fake_guided", seed, top1, params, {"ratio": 0.5, "source": source}))
    for (ratio, scope), seeds in MAGNITUDE.items():
        for seed, (top1, params) in seeds.items():
            out.append(fake("magnitude", seed, top1, params, {"ratio": ratio, "scope": scope, "rounds": 1}))
    for seed, (top1, params) in BASELINE.items():
        out.append(fake("none", seed, top1, params))
        out.append(fake("magnitude", seed, 90.0, 1_000_000, {"ratio": 0.9, "rounds": 3, "round_ratio": 0.54}))
        out.append(fake("l1", seed, 91.0, 3_000_000, {"variant": "A"}, kept=[0.1] * 6))  # l1 has no curve
    return out


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(PRUNERS, FakeGuided.name, FakeGuided)
    monkeypatch.setattr(Uniform, "curve", classmethod(lambda cls, requested: Curve("channels", "uniform", None)))
    report.write_report(synthetic(), [], tmp_path, ["synthetic"])
    return tmp_path


def _data(out: Path, stem: str) -> dict[str, Any]:
    png = out / "plots" / f"{stem}.png"
    assert png.is_file() and png.stat().st_size > 1000, sorted(p.name for p in (out / "plots").iterdir())
    return json.loads((out / "plots" / f"{stem}.json").read_text())


def _expected(seeds: Mapping[int, tuple], offset: float = 0.0) -> dict[str, Any]:
    accs = [v[0] + BEST + offset for v in seeds.values()]
    params = statistics.mean(v[1] for v in seeds.values())
    return {"params": params, "mean": statistics.mean(accs), "std": statistics.stdev(accs), "n": len(accs)}


def _check(point: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: point[k] for k in expected} == pytest.approx(expected), point


def test_channel_curves_per_method_sorted_by_params(written: Path) -> None:
    data = _data(written, "curves_cifar10_vgg19_channels_scratch_e")
    with Image.open(written / "plots" / "curves_cifar10_vgg19_channels_scratch_e.png") as image:
        assert image.size == curves.CURVES_SIZE
    assert (data["kind"], data["schedule"], data["metric"]) == ("channels", "scratch_e", "best")
    by_label = {c["label"]: c["points"] for c in data["curves"]}
    assert list(by_label) == [SLIMMING_LABEL, "uniform", "guided", "transferred guided (from vgg16/cifar100)"]
    slimming = by_label[SLIMMING_LABEL]
    assert [p["level"] for p in slimming] == [0.7, 0.5]  # sorted by params: the 70% pruned model is smaller
    _check(slimming[0], _expected({s: v[:2] for s, v in SLIMMING[0.7].items()}))
    _check(slimming[1], _expected({s: v[:2] for s, v in SLIMMING[0.5].items()}))
    assert slimming[1]["seeds"] == [1, 2]
    _check(by_label["uniform"][0], _expected({s: v[:2] for s, v in UNIFORM[0.5].items()}))
    _check(by_label["guided"][0], _expected(GUIDED))
    _check(by_label["transferred guided (from vgg16/cifar100)"][0], _expected(TRANSFERRED))
    assert len(by_label["uniform"]) == len(by_label["guided"]) == 1
    _check(data["unpruned"], _expected(BASELINE))


def test_weight_curves_global_vs_layer_and_curveless_results_left_out(written: Path) -> None:
    data = _data(written, "curves_cifar10_vgg19_weights_scratch_e")
    by_label = {c["label"]: c["points"] for c in data["curves"]}
    assert list(by_label) == [MAGNITUDE_LABEL, "uniform"]
    assert [p["setting"] for p in by_label[MAGNITUDE_LABEL]] == ["80%", "30%"]  # iterative (rounds=3) has no curve
    _check(by_label[MAGNITUDE_LABEL][0], _expected(MAGNITUDE[(0.8, "global")]))
    _check(by_label[MAGNITUDE_LABEL][1], _expected(MAGNITUDE[(0.3, "global")]))
    _check(by_label["uniform"][0], _expected(MAGNITUDE[(0.8, "layer")]))
    pruners = set()
    for path in (written / "plots").glob("*.json"):
        figure = json.loads(path.read_text())
        pruners |= {p["pruner"] for c in figure.get("curves", []) for p in c["points"]}
        pruners |= {line["method"] for line in figure.get("lines", [])}
    assert "l1" not in pruners and not any("L1" in p for p in pruners)


def test_a_schedule_run_at_two_lrs_and_the_unpruned_model_from_pretraining(tmp_path: Path) -> None:
    top1 = {0.1: {1: 93.0, 2: 93.2}, 0.01: {1: 92.0, 2: 92.6}}
    pretrain = {1: 93.8, 2: 94.0}
    results = [
        fake("magnitude", seed, acc, 1000, {"ratio": 0.5}, lr=lr, pretrain=pretrain[seed], fraction=0.75)
        for lr, seeds in top1.items()
        for seed, acc in seeds.items()
    ]
    report.write_report(results, [], tmp_path, ["synthetic"], metric="final")
    data = _data(tmp_path, "curves_cifar10_vgg19_weights_scratch_e")
    points = {c["label"]: c["points"] for c in data["curves"]}
    assert list(points) == [f"{MAGNITUDE_LABEL} (schedule.lr=0.01)", f"{MAGNITUDE_LABEL} (schedule.lr=0.1)"]
    for lr, seeds in top1.items():
        (point,) = points[f"{MAGNITUDE_LABEL} (schedule.lr={lr})"]
        _check(point, _expected({s: (acc - BEST, 1000) for s, acc in seeds.items()}))
    _check(data["unpruned"], _expected({s: (acc - BEST, 4000) for s, acc in pretrain.items()}))


def test_one_figure_per_schedule(written: Path) -> None:
    data = _data(written, "curves_cifar10_vgg19_channels_finetune")
    assert [c["label"] for c in data["curves"]] == [SLIMMING_LABEL]
    _check(data["curves"][0]["points"][0], _expected({s: v[:2] for s, v in SLIMMING[0.7].items()}, offset=1))


def test_stage_ratios_mean_over_seeds(written: Path) -> None:
    data = _data(written, "stage_ratios_cifar10_vgg19_channels")
    assert data["sizes"] == SIZES
    lines = {line["label"]: line for line in data["lines"]}
    assert list(lines) == [f"{SLIMMING_LABEL} 50%", f"{SLIMMING_LABEL} 70%", "uniform 50%"]
    for label, seeds in [
        (f"{SLIMMING_LABEL} 50%", SLIMMING[0.5]),
        (f"{SLIMMING_LABEL} 70%", SLIMMING[0.7]),
        ("uniform 50%", UNIFORM[0.5]),
    ]:
        expected = [statistics.mean(v[2][i] for v in seeds.values()) for i in range(len(SIZES))]
        assert lines[label]["kept"] == pytest.approx(expected) and lines[label]["sizes"] == SIZES
        assert lines[label]["n"] == 2  # the fine-tuned runs of a seed share its pruned model: counted once
    assert not (written / "plots" / "stage_ratios_cifar10_vgg19_weights.json").exists()  # no result has the field


def test_report_embeds_the_figures(written: Path) -> None:
    text = (written / "report.md").read_text()
    section = text[text.index(f"## {curves.SECTION}") :]
    for stem in ("curves_cifar10_vgg19_channels_scratch_e", "stage_ratios_cifar10_vgg19_channels"):
        assert f"(plots/{stem}.png)" in section


def test_a_row_setting_holding_a_dict_gets_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guided pruner's setting names its source (a dict): the criteria comparison keys rows by it too."""
    monkeypatch.setitem(PRUNERS, FakeGuided.name, FakeGuided)
    results = [fake("fake_guided", 1, 93.0, 10, {"ratio": 0.5, "source": {"model": m}}) for m in ("vgg19", "vgg16")]
    (table,) = comparison.report_tables(results)
    assert sorted(row.setting["source"]["model"] for row in table.rows) == ["vgg16", "vgg19"]
