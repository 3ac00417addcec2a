"""The pruned-speed benchmark (``benchmarks/pruned_speed.py --quick``: JSON and Markdown well formed, ratios and
speedups consistent with what was measured) and the report's ``--speed`` column (shown for the matching row, empty
elsewhere, a malformed JSON refused). No speed or speedup value is asserted: timings depend on the machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from test_report import fake, write_results

from rethink.errors import UserError
from rethink.results import report
from rethink.results.files import collect
from rethink.results.speed import COLUMN, FORMAT, load
from rethink.results.tables import build_tables
from rethink.speed.catalogue import QUICK_CELLS, catalogue, compose_plan, select
from rethink.speed.trained import trained_models

MEASUREMENTS = ("latency_ms", "inference_ips", "train_ips")
PATHS = ("fp32", "channels_last", "bf16", "channels_last+bf16")
MODEL_KEYS = {"name", "role", "group", "table", "dataset", "model", "options", "pruner", "setting", "large", "params"}
MODEL_KEYS |= {"flops", "batch", "dataset_batch", "paths", "fastest", "notes"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("speed")
    json_path, md_path = out / "speed.json", out / "speed.md"
    command = [sys.executable, str(REPO / "benchmarks" / "pruned_speed.py"), "--quick"]
    command += ["--json", str(json_path), "--markdown", str(md_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(json_path.read_text()), md_path.read_text(), json_path


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_json_is_well_formed(quick: tuple[dict[str, Any], str, Path]) -> None:
    data, _, _ = quick
    assert data["format"] == FORMAT
    assert {"platform", "processor", "cpu_model", "torch", "torch_threads", "device", "name"} <= set(data["machine"])
    assert data["settings"]["repeats"] == 1 and data["settings"]["paths"] == list(PATHS)
    assert data["skipped"] and all(s["reason"] for s in data["skipped"])  # training-decided models, with why
    large, pruned = data["models"]
    assert (large["role"], pruned["role"]) == ("large", "pruned") and pruned["large"] == large["name"]
    assert (pruned["table"], pruned["setting"], pruned["options"]["width_multiplier"]) == ("l1", {"variant": "B"}, 0.25)
    for model in (large, pruned):
        assert MODEL_KEYS <= set(model), MODEL_KEYS - set(model)
        assert (model["dataset"], model["model"]) == ("cifar10", "resnet56")
        assert isinstance(model["params"], int) and isinstance(model["flops"], int)
        assert model["params"] > 0 and model["flops"] > 0
        assert 1 <= model["batch"] <= model["dataset_batch"] == 64
        assert set(model["paths"]) == set(PATHS)
        for path in PATHS:
            for key in MEASUREMENTS:
                measured = model["paths"][path][key]
                assert _positive(measured["median"]) and len(measured["runs"]) == 1
        for key in MEASUREMENTS:  # the fastest path is one of the measured ones, with its median
            fastest = model["fastest"][key]
            assert fastest["median"] == model["paths"][fastest["path"]][key]["median"]
    assert pruned["params"] < large["params"] and pruned["flops"] < large["flops"]
    assert pruned["params_ratio"] == pytest.approx(large["params"] / pruned["params"])
    assert pruned["flops_ratio"] == pytest.approx(large["flops"] / pruned["flops"])
    speedup = pruned["speedup"]
    fp32 = {k: (large["paths"]["fp32"][k]["median"], pruned["paths"]["fp32"][k]["median"]) for k in MEASUREMENTS}
    assert speedup["fp32"]["latency_ms"] == pytest.approx(fp32["latency_ms"][0] / fp32["latency_ms"][1])
    assert speedup["fp32"]["train_ips"] == pytest.approx(fp32["train_ips"][1] / fp32["train_ips"][0])
    fastest = {k: (large["fastest"][k]["median"], pruned["fastest"][k]["median"]) for k in MEASUREMENTS}
    assert speedup["fastest"]["inference_ips"] == pytest.approx(
        fastest["inference_ips"][1] / fastest["inference_ips"][0]
    )
    assert all(_positive(speedup[p][k]) for p in ("fp32", "fastest") for k in MEASUREMENTS)


def test_quick_markdown_has_every_model(quick: tuple[dict[str, Any], str, Path]) -> None:
    data, markdown, _ = quick
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert "FLOPs ratio" in rows[0] and "speedup train" in rows[0]
    assert len(rows) == 1 + len(data["models"])
    for model, row in zip(data["models"], rows[1:]):
        assert row.startswith(f"| {model['name']} |")
    assert f"{data['models'][1]['flops_ratio']:.2f}" in rows[2]
    assert "Skipped: " in markdown and data["machine"]["name"] in markdown


def _l1_results(options: dict[str, Any]) -> list[dict[str, Any]]:
    """ResNet-56-B and -A (the benchmark has only B) and ResNet-110-B, with the given model options."""
    results = []
    for variant, model in (("B", "resnet56"), ("A", "resnet56"), ("B", "resnet110")):
        requested = {"variant": variant, "stage_ratios": None, "layer_ratios": None, "skip": []}
        for seed in (1, 2):
            results.append(fake("cifar10", model, "l1", "scratch_e", seed, 93.0, requested, model_options=options))
    return results


def _md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]


def test_report_speed_column(quick: tuple[dict[str, Any], str, Path], tmp_path: Path) -> None:
    data, _, json_path = quick
    pruned = data["models"][1]
    write_results(tmp_path / "sweep", _l1_results(pruned["options"]))
    out = tmp_path / "report"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--speed", str(json_path)]) == 0
    text = (out / "tables" / "l1.md").read_text()
    header, _, *rows = _md_rows(text)
    column = header.index(COLUMN)
    by_row = {(row[1], row[2]): row[column] for row in rows}
    assert by_row[("resnet56", "B")] == f"{pruned['speedup']['fastest']['train_ips']:.2f}x"
    assert by_row[("resnet56", "A")] == "" and by_row[("resnet110", "B")] == ""
    assert f"{COLUMN}: training-step throughput" in text and data["machine"]["name"] in text
    assert COLUMN in (out / "tables" / "l1.csv").read_text().splitlines()[0]


def test_report_speed_column_needs_the_same_model_options(
    quick: tuple[dict[str, Any], str, Path], tmp_path: Path
) -> None:
    """Full-width results do not take the quarter-width benchmark's number: no row matches, no column."""
    _, _, json_path = quick
    write_results(tmp_path / "sweep", _l1_results({"width_multiplier": 1.0, "detach_shortcut": False}))
    out = tmp_path / "report"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--speed", str(json_path)]) == 0
    assert COLUMN not in (out / "tables" / "l1.md").read_text()


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not JSON"),
        (json.dumps({"format": "other"}), "not a pruned-speed benchmark"),
        (json.dumps({"format": FORMAT, "machine": {"name": "x"}, "models": []}), "it has no models"),
    ],
)
def test_malformed_speed_json_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    write_results(tmp_path / "sweep", _l1_results({}))
    bad = tmp_path / "speed.json"
    bad.write_text(content)
    assert report.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "r"), "--speed", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"--speed {bad}: " in err and message in err and "benchmarks/pruned_speed.py --json" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_speed_json_without_speedups_is_refused(quick: tuple[dict[str, Any], str, Path], tmp_path: Path) -> None:
    data, _, _ = quick
    broken = json.loads(json.dumps(data))
    del broken["models"][1]["speedup"]
    path = tmp_path / "speed.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(UserError, match=r"models\[1\] \(.*l1 B\) lacks positive speedups"):
        load(path)


def test_models_filter_names_what_exists() -> None:
    models, _ = catalogue(QUICK_CELLS)
    assert [m.name for m in select(models, ["l1 B"])] == [m.name for m in models]
    with pytest.raises(UserError, match="--models vgg19: no pruned model"):
        select(models, ["vgg19"])


def test_trained_models_of_finished_runs(tmp_path: Path) -> None:
    """--result: a run's pretrain and prune spec.json give the models, keyed as its report row is."""
    plan = compose_plan(QUICK_CELLS[0][1])
    stages = []
    for stage, spec in (("pretrain", plan.large), ("prune", plan.pruned)):
        (tmp_path / "art" / stage).mkdir(parents=True)
        (tmp_path / "art" / stage / "spec.json").write_text(spec.to_json())
        stages.append({"stage": stage, "path": str(tmp_path / "art" / stage), "status": "computed"})
    requested = {"ratio": 0.5, "sparsity": None, "min_channels": 1, "on_empty": "keep_min"}
    options = dict(plan.settings.model.options)
    result = fake("cifar10", "resnet56", "slimming", "finetune", 1, 93.0, requested, model_options=options)
    result["stages"] = stages
    result["config"]["dataset"] = {"image_size": 32, "batch_size": 64}
    write_results(tmp_path / "runs", [result])
    models, problems = trained_models([tmp_path / "runs"], [])
    assert problems == [] and [m.role for m in models] == ["large", "pruned"]
    large, pruned = models
    assert (large.params, pruned.params) == (plan.cost("large")["params"], plan.cost("pruned")["params"])
    assert pruned.large == large.name and pruned.batch_size == 64
    (row,) = [r for t in build_tables(collect([tmp_path / "runs"])[0]) for r in t.rows]
    assert pruned.identity() == {
        "table": row.table, "dataset": row.dataset, "model": row.model, "options": row.options,
        "pruner": "slimming", "setting": row.setting,
    }  # fmt: skip
