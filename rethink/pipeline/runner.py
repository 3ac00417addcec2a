"""Walk the stages of one planned cell through the stage path: pretrain (or import) the large model, prune it in a
Lightning run (and, for iterative pruning, retrain the original initialisation under each decision), retrain.
Each stage records whether it was computed, resumed, reused or imported."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from rethink.arch import ArchSpec, build, spec_cost
from rethink.arch.registry import model_cost
from rethink.arch.stages import feature_map_sizes
from rethink.data import build_datamodule
from rethink.distributed import is_distributed_follower
from rethink.io import save_tensors_atomic, write_json_atomic, write_text_atomic
from rethink.pipeline import keys, status
from rethink.pipeline.plan import CellPlan, SparseCost, StagePlan
from rethink.pipeline.stages import Outcome, Produced, StagePath
from rethink.pipeline.store import ArtifactStore, sha256_file
from rethink.pruning.callback import PruningCallback
from rethink.pruning.context import PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.masks import sparsity_report, stage_kept_weights
from rethink.pruning.registry import SourceModels
from rethink.training.checkpoints import load_weights
from rethink.training.loggers import log_reused
from rethink.training.module import ClassificationModule
from rethink.training.trainer import RunContext, device_label, fit, validate


def load_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_metrics(path: Path) -> dict[str, Any]:
    """A training stage's ``metrics.json``."""
    return json.loads((path / "metrics.json").read_text())


# what a stage's computation cost, kept in its artifact (metrics.json or the manifest) so a reused stage's record
# carries the original computation's numbers; stores from before these keys have none (the report: unknown cost)
COST_KEYS = ("compute_s", "device")


def _cost(start: float, device: str) -> dict[str, Any]:
    """The wall time since ``start`` (perf_counter) and the device. A resumed stage counts only this run's time."""
    return {"compute_s": round(time.perf_counter() - start, 2), "device": device}


@dataclass(frozen=True)
class Guide:
    """The source cell's decision a guided cell follows: its decided models, its prune stage's key and its resolved
    plan."""

    models: SourceModels
    key: str
    plan: CellPlan

    def notes(self) -> dict[str, Any]:
        """What the guided cell's decision records of it: the source cell and its pruning summary."""
        return {"source": self.plan.cell, "source_pruning": self.plan.pruning_summary()}


@dataclass(frozen=True)
class RetrainStart:
    """Where the retraining's weights can start (:class:`rethink.pipeline.schedules.Start`; the schedule picks)."""

    plan: CellPlan
    prune: Outcome | None  # the final prune stage (None: a predefined or guided target, nothing decided here)
    decision: Decision | None

    def inherited(self) -> dict[str, torch.Tensor]:
        assert self.decision is not None, "a schedule inheriting weights is planned only after a decision"
        return self.decision.state

    def original(self) -> dict[str, torch.Tensor]:
        assert self.prune is not None, "a schedule from the original init is planned only after a decision"
        return load_state(self.prune.path / "init.pt")

    def fresh(self) -> dict[str, torch.Tensor] | None:
        if self.decision is None:
            return None
        return self.decision.fresh_state(self.plan.pruned, self.plan.cell["seed"])


class CellRunner:
    """Runs the stages of ``plan``; ``plan`` becomes the resolved plan once a pruner has decided."""

    def __init__(self, plan: CellPlan, datamodule: pl.LightningDataModule, run_dir: Path) -> None:
        settings = plan.settings
        self.plan = plan
        group = plan.group_label()
        self.run_context = RunContext(settings, plan.cell, group, datamodule, run_dir)
        store = ArtifactStore(settings.paths.artifact_dir, keys.KEY_SCHEME)
        self.stages = StagePath(store, OmegaConf.to_yaml(settings.config()))
        self.records: list[dict[str, Any]] = []
        self.epochs_done = 0  # epochs of the training stages already through (shown while the cell runs)

    # ------------------------------------------------------------------------------------------------ records

    def _record(self, outcome: Outcome, **extra: Any) -> None:
        record = {"stage": outcome.stage, "key": outcome.key, "path": str(outcome.path), "status": outcome.status}
        self.records.append({**record, **extra})
        if outcome.status == "reused":  # nothing trained; logger=wandb: still a W&B run, tagged reused
            run, payload = self.run_context, outcome.payload
            recipe = payload.get("recipe") if isinstance(payload, dict) else None
            stage = "evaluate" if "imported_from" in extra else outcome.stage  # as its computing run was named
            values = {**extra.get("accuracy", {}), **({"epochs": recipe["epochs"]} if recipe else {})}
            log_reused(run.settings, run.cell, run.group, stage, outcome.path, values, run.run_dir)

    # --------------------------------------------------------------------------------------------- training

    def _stage(
        self, name: str, key: str, compute: Callable[[Path], Produced], load: Callable[[Path], Any], epochs: int = 0
    ) -> Outcome:
        """Reuse or compute the stage artifact ``name/key``, recorded first as the cell's running stage (``epochs``:
        those it trains, 0 for a stage that trains none) so that progress and an interruption can say where it is."""
        if not is_distributed_follower():
            path, total = self.stages.store.path(name, key), self.plan.training_epochs()
            status.mark_stage(self.run_context.run_dir, name, path, epochs, self.epochs_done, total)
        return self.stages.run(name, key, compute, load)

    def _fit(
        self,
        stage: StagePlan,
        key: str,
        spec: ArchSpec,
        initial: dict[str, torch.Tensor] | None,
        callbacks: list[pl.Callback],
        save_init: bool = False,
    ) -> Outcome:
        """A training stage: ``spec`` from ``initial`` (None: fresh) with ``stage.recipe``; ``save_init`` keeps the
        original initialisation (``init.pt``) for lottery tickets."""

        def compute(path: Path) -> Produced:
            def before_fit(module: ClassificationModule) -> None:
                if save_init and not (path / "init.pt").exists() and not is_distributed_follower():
                    save_tensors_atomic(path / "init.pt", module.model.state_dict())

            start = time.perf_counter()
            result = fit(self.run_context, stage.name, spec, stage.recipe, path, initial, before_fit, callbacks)
            metrics = {
                "accuracy": result.accuracy,
                "recipe": asdict(stage.recipe),
                "optimizer_steps": result.optimizer_steps,
                "batch": result.batch,
                **_cost(start, result.device),
            }
            if result.is_global_zero:
                save_tensors_atomic(path / "weights.pt", result.module.model.state_dict())
                write_text_atomic(path / "spec.json", spec.to_json() + "\n")
                write_json_atomic(path / "metrics.json", metrics)
            files = [
                f for f in ("weights.pt", "spec.json", "metrics.json", "metrics.csv", "init.pt") if (path / f).exists()
            ]
            return Produced(files, metrics, "resumed" if result.resumed else "computed")

        outcome = self._stage(stage.name, key, compute, read_metrics, stage.recipe.epochs)
        self.epochs_done += stage.recipe.epochs
        payload = outcome.payload
        extra = {k: payload[k] for k in ("optimizer_steps", "batch", *COST_KEYS) if k in payload}  # older: absent
        self._record(outcome, accuracy=payload["accuracy"], **extra)
        return outcome

    def _import(self) -> Outcome:
        """The pretrain stage from user-given weights (``pretrain.weights``): check, evaluate, store; keyed by the
        file's content, and the record names the file."""
        plan, spec = self.plan, self.plan.large
        digest = sha256_file(Path(plan.pretrained_weights))
        state = load_weights(plan.pretrained_weights, spec, plan.model_name)  # refused before the store is touched

        def compute(path: Path) -> Produced:
            start = time.perf_counter()
            module, accuracy = validate(self.run_context, "evaluate", spec, state, path)
            metrics = {"accuracy": accuracy, "imported_from": plan.pretrained_weights}
            metrics |= _cost(start, device_label(module.trainer))
            if not is_distributed_follower():
                save_tensors_atomic(path / "weights.pt", state)
                write_text_atomic(path / "spec.json", spec.to_json() + "\n")
                write_json_atomic(path / "metrics.json", metrics)
            return Produced(["weights.pt", "spec.json", "metrics.json"], metrics, "imported")

        outcome = self._stage("pretrain", keys.pretrain_key(plan, digest), compute, read_metrics)
        imported = {"file": plan.pretrained_weights, "sha256": digest}
        cost = {k: outcome.payload[k] for k in COST_KEYS if k in outcome.payload}
        self._record(outcome, accuracy=outcome.payload["accuracy"], imported_from=imported, **cost)
        return outcome

    def _pretrain(self) -> Outcome:
        plan = self.plan
        if plan.pretrained_weights:
            return self._import()
        penalised = plan.pruner.requirements().regularizer
        callbacks = plan.pruner.pretrain_callbacks(plan.large) if penalised else []
        outcome = self._fit(plan.stages[0], keys.pretrain_key(plan), plan.large, None, callbacks, save_init=True)
        if penalised:  # trained with a pruner's sparsity penalty: not the normally trained model of Unpruned
            regularizer = plan.pruner.regularizer(plan.large) or {}
            self.records[-1]["regularizer"] = {k: v for k, v in regularizer.items() if k != "bn_paths"}
        return outcome

    # ---------------------------------------------------------------------------------------------- pruning

    def _prune(
        self, source: Outcome, original: Path, round_index: int, previous: Decision | None, guide: Guide | None = None
    ) -> Outcome:
        """Decide on the weights of ``source`` in the prune stage's Lightning run (``guide``: the source cell's
        decision it follows); the artifact also keeps the original initialisation (``original``, when there is one)
        cut the same way."""
        plan, large = self.plan, self.plan.large
        pruner, seed, calibration = plan.pruner, plan.cell["seed"], plan.settings.calibration

        def context_of(network: torch.nn.Module, trainer: pl.Trainer) -> PruneContext:
            return PruneContext(
                network, large, plan.model_name, seed, plan.pruned, round_index, pruner.rounds(), previous, trainer,
                calibration.batches, calibration_images_per_class=calibration.images_per_class,
                source=None if guide is None else guide.models,
            )  # fmt: skip

        def compute(path: Path) -> Produced:
            start = time.perf_counter()
            callback = PruningCallback(pruner, context_of, path)
            module, accuracy = validate(
                self.run_context, "prune", large, load_state(source.path / "weights.pt"), path, [callback]
            )
            files = list(callback.files)
            if (original / "init.pt").exists() and not is_distributed_follower():
                init = build(large)
                init.load_state_dict(load_state(original / "init.pt"), strict=True)
                save_tensors_atomic(path / "init.pt", pruner.apply(init, large, callback.decision).state_dict())
                files.append("init.pt")
            meta = {"accuracy": accuracy, "installed_sha256_per_rank": callback.installed}
            meta |= _cost(start, device_label(module.trainer))
            return Produced(files, callback.decision, meta=meta)

        key = keys.prune_key(plan, source.key, round_index, None if guide is None else guide.key)
        outcome = self._stage("prune", key, compute, Decision.load)
        self._record(outcome, **outcome.meta)
        return outcome

    def _resolve(self, decision: Decision, guide: Guide | None = None) -> None:
        """The plan with the decided architecture; with masks, its cost counts only the nonzero conv weights. A
        decision that followed a source cell's (``guide``) names it."""
        plan, sparse = self.plan, None
        if decision.masks is not None:
            model = build(decision.spec)
            model.load_state_dict(decision.state, strict=True)
            cost = model_cost(decision.spec, model, plan.input_size, sparse=True)
            removed = sum(int((~m).sum()) for m in decision.masks.values())
            params = spec_cost(decision.spec, plan.input_size).params - removed
            report = sparsity_report(decision.masks)["total"]
            stages = stage_kept_weights(decision.masks, feature_map_sizes(decision.spec, plan.input_size))
            sparse = SparseCost(params, cost.flops_record(), report, stages)
        self.plan = plan.resolve(decision.spec, sparse, decision.notes | ({} if guide is None else guide.notes()))

    # ------------------------------------------------------------------------------------------------- cell

    def decide(self) -> tuple[Outcome, Decision]:
        """Pretrain (or import) the large model and prune it (with iterative pruning's rounds); the plan becomes the
        resolved one. Returns the final prune stage and its decision."""
        plan = self.plan
        guide = None if plan.source is None else self._source_decision()
        pretrain = source = self._pretrain()
        decision = None
        for round_index, stage in enumerate(plan.stages[1:-1], start=1):  # iterative: retrain init x decision
            prune = self._prune(source, pretrain.path, round_index, decision)
            decision = prune.payload
            initial = load_state(prune.path / "init.pt")
            key = keys.round_key(plan, prune.key, stage)
            source = self._fit(stage, key, plan.large, initial, decision.keepers())
        prune = self._prune(source, pretrain.path, plan.pruner.rounds(), decision, guide)
        self._resolve(prune.payload, guide)
        return prune, prune.payload

    def _source_decision(self) -> Guide:
        """Run (or reuse) the source cell's pretrain and prune stages; their records join this cell's, marked with
        the source cell."""
        plan, source = self.plan, self.plan.source
        assert source is not None
        context = self.run_context
        same_data = source.settings.dataset == plan.settings.dataset and source.settings.seed == plan.settings.seed
        datamodule = (
            context.datamodule if same_data else build_datamodule(source.settings.dataset, source.settings.seed)
        )
        runner = CellRunner(source, datamodule, context.run_dir)
        prune, decision = runner.decide()
        self.records += [{**record, "source": source.cell} for record in runner.records]
        models = SourceModels(source.large, decision.spec, source.input_size, decision.masks)
        return Guide(models, prune.key, runner.plan)

    def _guided(self) -> None:
        """Resolve this plan's target from the source cell's decision (:meth:`_source_decision`)."""
        plan, guide = self.plan, self._source_decision()
        target = plan.pruner.align(plan.large, plan.pruner.target_from(plan.large, plan.input_size, guide.models))
        self.plan = plan.resolve(target, decided=guide.notes())

    def run(self) -> dict[str, Any]:
        """All stages in order; returns the final stage's metrics."""
        plan = self.plan
        if not plan.pruner.prunes:
            return self._pretrain().payload
        decision, prune = None, None
        if plan.needs_pretrain:
            prune, decision = self.decide()
        elif plan.source is not None:
            self._guided()
        else:
            self.records.append(
                {"stage": "prune", "key": None, "path": None, "status": "predefined target: no trained model needed"}
            )
        plan, stage = self.plan, self.plan.retrain
        initial = plan.settings.schedule.initial_weights(RetrainStart(plan, prune, decision))
        key = keys.retrain_key(plan, stage, None if prune is None else prune.key, plan.pruned)
        return self._fit(stage, key, plan.pruned, initial, [] if decision is None else decision.keepers()).payload
