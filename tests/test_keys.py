"""Stage keys: every setting that can change what a stage computes is in its key, only the listed exceptions are
not, and the keys of reference cells are pinned (a deliberate change updates them in the same commit)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import compose_settings

from rethink.pipeline import keys
from rethink.pipeline.estimate import stage_estimates
from rethink.pipeline.plan import build_plan
from rethink.pipeline.store import ArtifactStore


def stage_keys(*overrides: str) -> dict[str, str]:
    """The keys a cell's stages will have, as far as they are known before training (a dry run's: a retraining of an
    automatic pruner's architecture waits for its decision); iterative pruning's rounds are ``prune1``, ``imp2``..."""
    estimates = [e for e in stage_estimates(build_plan(compose_settings(*overrides))) if e.key is not None]
    rounds, decisions, found = sum(e.stage == "imp" for e in estimates), 0, {}
    for estimate in estimates:
        decisions += estimate.stage == "prune"
        name = {"prune": "prune" if decisions > rounds else f"prune{decisions}", "imp": f"imp{decisions + 1}"}
        found[name.get(estimate.stage, estimate.stage)] = estimate.key
    return found


CIFAR = ("dataset=cifar10",)
REFERENCE = {  # overrides (on CIFAR-10) -> pinned keys
    ("model=resnet56",): {"pretrain": "4152c837884fc67c"},
    ("model=resnet56", "pruner=l1", "pruner.variant=B", "schedule=scratch_b"): {"retrain": "a2e5982bf5c7e54e"},
    ("model=vgg16", "pruner=l1", "pruner.variant=A", "schedule=finetune"): {
        "pretrain": "899f642a1606878e",
        "prune": "d7613748a3ee1e50",
        "retrain": "6287e876ff16c760",
    },
    ("model=vgg19", "model.head=linear", "pruner=slimming", "pruner.ratio=0.7", "schedule=scratch_b"): {
        "pretrain": "b9e3780cd70c0f88",
        "prune": "6da52aefc224ff3a",
    },
    ("model=vgg19_bn", "pruner=magnitude", "pruner.rounds=2", "pruner.round_ratio=0.2", "schedule=lottery"): {
        "pretrain": "18d3b916b77f8fd7",
        "prune1": "503a411ec653366a",
        "imp2": "662c5333601fbfce",
        "prune": "dec577ec63918db1",
    },
}


@pytest.mark.parametrize("overrides", list(REFERENCE), ids=lambda o: " ".join(o))
def test_keys_of_reference_cells_are_pinned(overrides: tuple[str, ...]) -> None:
    assert stage_keys(*CIFAR, *overrides) == REFERENCE[overrides]


def test_cells_share_what_they_have_in_common() -> None:
    baseline = stage_keys(*CIFAR, "model=vgg16")
    finetune = stage_keys(*CIFAR, "model=vgg16", "pruner=l1", "pruner.variant=A", "schedule=finetune")
    lottery = stage_keys(*CIFAR, "model=vgg16", "pruner=l1", "pruner.variant=A", "schedule=lottery")
    assert baseline["pretrain"] == finetune["pretrain"] == lottery["pretrain"]  # one large model for the table
    assert finetune["prune"] == lottery["prune"] and finetune["retrain"] != lottery["retrain"]
    random = stage_keys(*CIFAR, "model=vgg16", "pruner=random", "pruner.variant=A", "schedule=finetune")
    assert random["pretrain"] == finetune["pretrain"] and random["prune"] != finetune["prune"]
    slimming = stage_keys(*CIFAR, "model=vgg16", "pruner=slimming", "schedule=finetune")
    assert slimming["pretrain"] != baseline["pretrain"]  # trained with the BN sparsity penalty


@pytest.mark.parametrize(
    "change",
    [
        "+trainer.gradient_clip_val=0.5",
        "+trainer.accumulate_grad_batches=4",
        "trainer.precision=bf16-mixed",
        "optim.momentum=0.8",
        "optim.nesterov=true",
        "dataset.augment=false",
        "dataset.batch_size=128",
        "model.width_multiplier=0.5",
        "seed=2",
        "pretrain.lr=0.05",
    ],
)
def test_a_setting_that_changes_the_computation_changes_the_key(change: str) -> None:
    base = ("dataset=imagenet", "model=resnet34", "pruner=l1", "pruner.variant=A", "schedule=finetune")
    before, after = stage_keys(*base), stage_keys(*base, change)
    assert after["pretrain"] != before["pretrain"] and after["prune"] != before["prune"]


@pytest.mark.parametrize(
    "change",
    [
        "dataset.num_workers=4",
        "dataset.root=/somewhere/else",
        "dataset.test_batch_size=64",
        "paths.artifact_dir=/other/store",
        "paths.root_dir=/other/root",
        "trainer.enable_progress_bar=false",
        "progress_bar=tqdm",
        "verbose=true",
        "logger=wandb",
        "calibration.batches=2",  # l1 reads no data
        "schedule=lottery",  # the retraining's own choice: not the large model's nor the decision's
    ],
)
def test_paths_workers_and_display_do_not_change_the_keys(change: str) -> None:
    base = ("dataset=imagenet", "model=resnet34", "pruner=l1", "pruner.variant=A", "schedule=finetune")
    before, after = stage_keys(*base), stage_keys(*base, change)
    assert (after["pretrain"], after["prune"]) == (before["pretrain"], before["prune"])


def test_an_older_key_scheme_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = tmp_path / "pretrain" / "0123456789abcdef"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text('{"files": {}}')  # an artifact of rethink <= 0.1 (key scheme 1)
    with caplog.at_level(logging.WARNING):
        ArtifactStore(tmp_path, keys.KEY_SCHEME)
        ArtifactStore(tmp_path, keys.KEY_SCHEME)
    reports = [r for r in caplog.records if "older key scheme" in r.getMessage()]
    assert len(reports) == 1 and "not reused" in reports[0].getMessage()
    fresh = tmp_path / "fresh"
    with caplog.at_level(logging.WARNING):
        ArtifactStore(fresh, keys.KEY_SCHEME)
    assert len([r for r in caplog.records if "older key scheme" in r.getMessage()]) == 1  # a new store: nothing
