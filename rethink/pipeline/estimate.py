"""What a planned cell will cost and what of it is already stored, before anything runs (a sweep's dry run).

Each stage of a cell gets the key the runner will give it (:mod:`rethink.pipeline.keys`, computed here in the order
:class:`~rethink.pipeline.runner.CellRunner` computes them) where the plan determines it — every stage but the
retraining after an automatic (or guided) pruner, whose key depends on what training decides — and whether the store
holds it complete. Training compute follows the paper's convention: epochs x 3 x FLOPs/image (2 x MACs, forward) x
training images; the stages that cells share (same key: a large model, a decision) count once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from rethink.arch import spec_cost
from rethink.data.registry import train_images
from rethink.pipeline import keys
from rethink.pipeline.plan import CellPlan
from rethink.pipeline.store import MANIFEST, sha256_file
from rethink.settings.schema import Settings

FORWARD_AND_BACKWARD = 3  # a training step costs ~3x the forward FLOPs (the paper's convention)
REFERENCE_FLOPS_PER_S = 20e12  # the reference device of the estimates: 20 TFLOP/s sustained (as the experiment headers)
REFERENCE_DEVICE = "a GPU sustaining 20 TFLOP/s"


@dataclass(frozen=True)
class StageEstimate:
    """One stage of a cell: its key (None: decided by training), epochs (0: no training; None: decided by training),
    the forward FLOPs per image of the model it trains, the images of an epoch, and whether it is stored."""

    stage: str
    key: str | None
    epochs: int | None
    flops_per_image: int
    images_per_epoch: int | None
    stored: bool
    upper_bound: bool = False  # FLOPs of the large model stand in for a pruned model training has yet to decide

    @property
    def train_flops(self) -> float | None:
        """epochs x 3 x FLOPs/image x images; None when the epochs or the images are not known."""
        if self.epochs is None or self.images_per_epoch is None:
            return None
        return float(self.epochs) * FORWARD_AND_BACKWARD * self.flops_per_image * self.images_per_epoch


def images_per_epoch(settings: Settings) -> int | None:
    """The training images of an epoch: the data set's, cut by ``trainer.limit_train_batches`` (batches or a
    fraction)."""
    images = train_images(settings.dataset)
    limit = settings.trainer.arguments.get("limit_train_batches")
    if images is None or limit is None:
        return images
    if isinstance(limit, float):
        return int(images * limit)
    return min(images, int(limit) * settings.dataset.batch_size)


@lru_cache(maxsize=None)
def _digest(path: str) -> str:
    """The sha256 of an imported weights file, once per file (every cell of a sweep imports the same one)."""
    return sha256_file(Path(path))


def stored(root: Path, stage: str, key: str | None) -> bool:
    """Whether the store under ``root`` holds stage ``key`` complete (None: a key training decides)."""
    return key is not None and (root / stage / key / MANIFEST).is_file()


def stage_estimates(plan: CellPlan) -> list[StageEstimate]:
    """The stages of ``plan`` in the runner's order, with their keys, costs and whether the store holds them."""
    settings = plan.settings
    root, images = Path(settings.paths.artifact_dir), images_per_epoch(settings)
    large = spec_cost(plan.large, plan.input_size).flops
    estimates: list[StageEstimate] = []

    def add(stage: str, key: str | None, epochs: int | None, flops: int, upper_bound: bool = False) -> None:
        estimates.append(StageEstimate(stage, key, epochs, flops, images, stored(root, stage, key), upper_bound))

    guide = None
    if plan.source is not None:  # a guided pruner: the source cell's pretrain and prune (its retraining is not run)
        estimates += stage_estimates(plan.source)[:-1]
        guide = estimates[-1].key  # the source's decision, which a decision on this cell's trained model follows
    prune = None
    if plan.needs_pretrain:
        if plan.pretrained_weights:  # imported: evaluated, not trained; keyed by the file's content
            found = Path(plan.pretrained_weights).is_file()
            source = keys.pretrain_key(plan, _digest(plan.pretrained_weights)) if found else None
            add("pretrain", source, 0, large)
        else:
            source = keys.pretrain_key(plan)
            add("pretrain", source, plan.stages[0].recipe.epochs, large)
        if plan.pruner.prunes:
            for round_index, stage in enumerate(plan.stages[1:-1], start=1):  # iterative pruning: init x decision
                prune = None if source is None else keys.prune_key(plan, source, round_index)
                add("prune", prune, 0, large)
                source = None if prune is None else keys.round_key(plan, prune, stage)
                add(stage.name, source, stage.recipe.epochs, large)
            unknown = source is None or (plan.source is not None and guide is None)
            prune = None if unknown else keys.prune_key(plan, source, plan.pruner.rounds(), guide)
            add("prune", prune, 0, large)
    if plan.pruner.prunes:
        stage = plan.retrain
        decided = plan.pruned is not None and (prune is not None or not plan.needs_pretrain)
        key = keys.retrain_key(plan, stage, prune, plan.pruned) if decided else None
        flops = large if plan.pruned is None else spec_cost(plan.pruned, plan.input_size).flops
        add("retrain", key, stage.recipe.epochs if stage.recipe else None, flops, upper_bound=plan.pruned is None)
    return estimates


@dataclass(frozen=True)
class Totals:
    """A sweep's training compute: its distinct training stages (shared ones once), their epochs and FLOPs, the
    reference device-hours, and what the store already holds."""

    cells: int
    unplanned: int  # cells whose plan failed
    stages: int  # distinct training stages
    stored: int  # of them, complete in the store
    undecided: int  # of them, with epochs training decides (not counted below)
    epochs: int
    train_flops: float
    to_compute_flops: float  # of the stages not stored yet
    upper_bound: bool  # some FLOPs are the large model's, standing in for pruned models training decides

    @property
    def device_hours(self) -> float:
        return self.train_flops / REFERENCE_FLOPS_PER_S / 3600

    @property
    def to_compute_hours(self) -> float:
        return self.to_compute_flops / REFERENCE_FLOPS_PER_S / 3600

    def to_dict(self) -> dict[str, Any]:
        reference = {"device": REFERENCE_DEVICE, "flops_per_s": REFERENCE_FLOPS_PER_S}
        rule = (
            "epochs x 3 x FLOPs/image (each model family's convention) x train images; stages shared by cells counted "
            "once"
        )
        hours = {"device_hours": round(self.device_hours, 3), "to_compute_hours": round(self.to_compute_hours, 3)}
        return {**asdict(self), **hours, "reference": reference, "rule": rule}


def totals(cells: Iterable[list[StageEstimate] | None]) -> Totals:
    """The totals over the stage estimates of every cell (None: a cell whose plan failed)."""
    cells = list(cells)
    distinct: dict[tuple[Any, Any], StageEstimate] = {}
    for number, estimates in enumerate(cells):
        for index, estimate in enumerate(estimates or []):
            if estimate.epochs != 0:  # training stages only; one whose key training decides is a stage of its own
                distinct.setdefault((estimate.stage, estimate.key) if estimate.key else (number, index), estimate)
    known = [e for e in distinct.values() if e.train_flops is not None]
    return Totals(
        cells=len(cells),
        unplanned=sum(estimates is None for estimates in cells),
        stages=len(distinct),
        stored=sum(e.stored for e in distinct.values()),
        undecided=sum(e.epochs is None for e in distinct.values()),
        epochs=sum(e.epochs or 0 for e in distinct.values()),
        train_flops=sum(e.train_flops for e in known),
        to_compute_flops=sum(e.train_flops for e in known if not e.stored),
        upper_bound=any(e.upper_bound for e in distinct.values()),
    )
