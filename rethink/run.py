"""Run one cell through its stages with a shared, resumable artifact store, then write ``result.json``.

pretrain -> prune -> retrain; each stage's output lives in ``paths.artifact_dir/<stage>/<key>`` where the key hashes
everything that determines it. A complete artifact is reused, an interrupted stage resumes from its last epoch
checkpoint, and a file lock makes concurrent cells share one computation.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from rethink.arch import ArchSpec, build
from rethink.checkpoints import load_weights
from rethink.cost import count_cost, spec_cost
from rethink.data import build_datamodule
from rethink.io import save_tensors_atomic, write_json_atomic, write_text_atomic
from rethink.plan import CellPlan, StagePlan, build_plan
from rethink.provenance import git_sha, versions
from rethink.pruning.decide import Masks, apply_decision, decide, decision_digest
from rethink.pruning.magnitude import MaskKeeper, apply_masks, load_masks, save_masks, sparse_he_init_, sparsity_report
from rethink.store import (
    ArtifactStore,
    all_ranks,
    barrier,
    content_key,
    is_distributed_follower,
    leader_value,
    sha256_file,
)
from rethink.training import evaluate, fit

# dataset keys that change where data is read from or how fast, not what a model learns
_DATA_KEYS_NOT_HASHED = ("npz_path", "root", "download", "num_workers", "test_batch_size", "recipe")
_TRAINER_KEYS_HASHED = ("precision", "devices", "num_nodes", "strategy", "limit_train_batches")


def _identity(cfg: DictConfig) -> dict[str, Any]:
    """What every stage key shares: the data a model learns from, seed, and result-changing trainer settings."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    return {
        "dataset": {k: val for k, val in dataset.items() if k not in _DATA_KEYS_NOT_HASHED},
        "trainer": {k: trainer.get(k) for k in _TRAINER_KEYS_HASHED},
        "seed": int(cfg.seed),
    }


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


class CellRunner:
    """Walks the stages of one planned cell, recording for each whether it was computed, resumed or reused."""

    def __init__(self, cfg: DictConfig, plan: CellPlan, datamodule: pl.LightningDataModule, run_dir: Path) -> None:
        self.cfg, self.plan, self.datamodule, self.run_dir = cfg, plan, datamodule, run_dir
        self.store = ArtifactStore(cfg.paths.artifact_dir)
        self.identity = _identity(cfg)
        self.records: list[dict[str, Any]] = []
        self.trained: dict[str, dict[str, torch.Tensor]] = {}  # key -> weights this process trained (DDP: per rank)
        self.masks: Masks | None = None  # weight masks of unstructured pruning, once decided
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)

    def _record(
        self, stage: str, key: str | None, path: Path | None, status: str, accuracy: dict[str, Any] | None = None
    ) -> None:
        record = {"stage": stage, "key": key, "path": None if path is None else str(path), "status": status}
        if accuracy is not None:
            record["accuracy"] = accuracy
        if stage == "pretrain" and self.plan.regularizer and not self.plan.pretrained_weights:
            # trained with a pruner's sparsity penalty: not the normally trained model of the Unpruned column
            record["regularizer"] = {k: val for k, val in self.plan.regularizer.items() if k != "bn_paths"}
        self.records.append(record)

    def _train(self, stage: StagePlan, key: str, initial: dict[str, torch.Tensor] | None) -> dict[str, Any]:
        """Run (or reuse) one training stage; returns its metrics.json content."""
        with self.store.lock(stage.name, key) as path:
            if leader_value(lambda: self.store.verify(path)):
                metrics = json.loads((path / "metrics.json").read_text())
                self._record(stage.name, key, path, "reused", metrics["accuracy"])
                return metrics
            path.mkdir(parents=True, exist_ok=True)
            spec = self.plan.specs[stage.model]
            if stage.name == "pretrain" and self.plan.pretrained_weights:
                return self._import(stage, key, path)
            save_init = stage.name == "pretrain" and not (path / "init.pt").exists()

            def before_fit(module) -> None:
                if save_init and not is_distributed_follower():  # the lottery ticket's original initialisation
                    save_tensors_atomic(path / "init.pt", module.model.state_dict())

            callbacks = self._regularizers() if stage.name == "pretrain" else self._mask_keepers()
            result = fit(
                self.cfg,
                self.plan.cell,
                stage.name,
                spec,
                stage.recipe,
                self.datamodule,
                path,
                initial,
                before_fit,
                callbacks,
                wandb_dir=self.run_dir,
            )
            metrics = {"accuracy": result.accuracy, "recipe": asdict(stage.recipe)}
            self.trained[key] = {k: t.detach().cpu() for k, t in result.module.model.state_dict().items()}
            if result.is_global_zero:
                save_tensors_atomic(path / "weights.pt", result.module.model.state_dict())
                write_text_atomic(path / "spec.json", spec.to_json() + "\n")
                write_json_atomic(path / "metrics.json", metrics)
                write_text_atomic(path / "config.yaml", self.config_yaml)
                files = ["weights.pt", "spec.json", "metrics.json", "config.yaml", "metrics.csv"]
                files += ["init.pt"] if (path / "init.pt").exists() else []
                self.store.commit(path, [f for f in files if (path / f).exists()], {"stage": stage.name})
                shutil.rmtree(path / "checkpoints", ignore_errors=True)
            barrier()  # DDP: the other ranks read this artifact next, so only once rank 0 has committed it
            self._record(stage.name, key, path, "resumed" if result.resumed else "computed", result.accuracy)
            return metrics

    def _mask_keepers(self) -> list[pl.Callback]:
        """Unstructured pruning: keep the pruned weights at exactly zero through retraining."""
        return [] if self.masks is None else [MaskKeeper(self.masks)]

    def _sparse_init(self, spec: ArchSpec) -> dict[str, torch.Tensor]:
        """Scratch retraining under masks: a fresh model with the sparsity-aware He init of paper-spec §2.2."""
        torch.manual_seed(self.plan.cell["seed"])
        model = build(spec)
        sparse_he_init_(model, self.masks, torch.Generator().manual_seed(self.plan.cell["seed"]))
        return model.state_dict()

    def _regularizers(self) -> list[pl.Callback]:
        """Pretraining penalties of an automatic pruner: SSS's branch-scale soft-threshold, slimming's BN L1."""
        regularizer = self.plan.regularizer or {}
        if "sss_gamma" in regularizer:
            from rethink.pruning.sss import SSSPenalty

            return [SSSPenalty(regularizer["sss_gamma"])]
        if "bn_sparsity" in regularizer:
            from rethink.pruning.slimming import BNSparsity

            return [BNSparsity(regularizer["bn_sparsity"], regularizer["bn_paths"])]
        return []

    def _import(self, stage: StagePlan, key: str, path: Path) -> dict[str, Any]:
        """The pretrain stage from user-given weights (``pretrain.weights``): check, evaluate, store."""
        spec = self.plan.specs["large"]
        state = load_weights(self.plan.pretrained_weights, spec, self.plan.model_name)
        accuracy = evaluate(self.cfg, self.plan.cell, spec, state, self.datamodule, path, self.run_dir)
        metrics = {"accuracy": accuracy, "imported_from": self.plan.pretrained_weights}
        self.trained[key] = state
        if not is_distributed_follower():
            save_tensors_atomic(path / "weights.pt", state)
            write_text_atomic(path / "spec.json", spec.to_json() + "\n")
            write_json_atomic(path / "metrics.json", metrics)
            write_text_atomic(path / "config.yaml", self.config_yaml)
            self.store.commit(path, ["weights.pt", "spec.json", "metrics.json", "config.yaml"], {"stage": stage.name})
        barrier()
        self._record(stage.name, key, path, "imported", accuracy)
        return metrics

    def _imp_round(self, round_index: int, masks: Masks) -> dict[str, torch.Tensor]:
        """One round of iterative magnitude pruning (Frankle & Carbin): the large model's original init under the
        masks so far, retrained with the pretrain recipe (a stored, resumable stage of its own); its trained weights."""
        pretrain = self.records[0]
        recipe = self.plan.stages[0].recipe
        key = content_key(
            {
                "stage": "imp",
                "pretrain": pretrain["key"],
                "round": round_index,
                "masks": decision_digest({}, masks),
                "recipe": asdict(recipe),
                **self.identity,
            }
        )
        init = build(self.plan.specs["large"])
        init.load_state_dict(_load_state(Path(pretrain["path"]) / "init.pt"), strict=True)
        apply_masks(init, masks)
        self.masks = masks
        self._train(StagePlan("imp", "large", "original", recipe), key, init.state_dict())
        return self.trained.get(key) or _load_state(self.store.path("imp", key) / "weights.pt")

    def _resolve(self, spec: ArchSpec, weights: dict[str, torch.Tensor], masks: Masks | None) -> None:
        """Tell the plan the decided architecture; with masks, its cost counts only the nonzero conv weights."""
        self.masks = masks
        sparse = None
        if masks is not None:
            model = build(spec)
            model.load_state_dict(weights, strict=True)
            cost = count_cost(model, self.plan.input_size, sparse=True)
            removed = sum(int((~m).sum()) for m in masks.values())
            params = spec_cost(spec, self.plan.input_size).params - removed
            sparse = {
                "params": params,
                "flops": {"macs": cost.macs, "paper": cost.flops},
                "report": sparsity_report(masks)["total"],
            }
        self.plan.resolve_pruned(self.cfg, spec, sparse)

    def _prune(self, pretrain_key: str) -> tuple[str, Path]:
        """Select channels on the trained large model and store the pruned spec, weights and sliced original init."""
        pruner = self.plan.pruner
        key = content_key({"stage": "prune", "pretrain": pretrain_key, "pruner": pruner})
        pretrain_path = self.store.path("pretrain", pretrain_key)
        with self.store.lock("prune", key) as path:
            if leader_value(lambda: self.store.verify(path)):
                self._record("prune", key, path, "reused")
                masks = load_masks(path / "masks.pt") if (path / "masks.pt").exists() else None
                spec = ArchSpec.from_json((path / "spec.json").read_text())
                self._resolve(spec, _load_state(path / "weights.pt"), masks)
                return key, path
            large_spec = self.plan.specs["large"]
            model = build(large_spec)
            # each rank prunes its own trained copy (DDP keeps them identical), or the stored one when reused
            trained = self.trained.get(pretrain_key) or _load_state(pretrain_path / "weights.pt")
            model.load_state_dict(trained, strict=True)
            decision = decide(
                model, large_spec, pruner, self.plan.specs.get("pruned"), self.plan.cell["seed"], self._imp_round
            )
            keep, spec, pruned, masks = decision.keep, decision.spec, decision.model, decision.masks
            # every rank decides from the same weights: check they agree
            digests = all_ranks(decision_digest(keep, masks))
            if len(set(digests)) != 1:
                raise RuntimeError(f"DDP ranks took different pruning decisions (keep sha256 per rank: {digests})")
            if not is_distributed_follower():
                path.mkdir(parents=True, exist_ok=True)
                save_tensors_atomic(path / "weights.pt", pruned.state_dict())
                files = ["weights.pt", "spec.json", "keep.json", "config.yaml"]
                if (pretrain_path / "init.pt").exists():  # imported weights have no original initialisation
                    init = build(large_spec)
                    init.load_state_dict(_load_state(pretrain_path / "init.pt"), strict=True)
                    init = apply_decision(init, large_spec, pruner["name"], keep, masks)
                    save_tensors_atomic(path / "init.pt", init.state_dict())  # for lottery tickets
                    files.append("init.pt")
                if masks is not None:
                    save_masks(path / "masks.pt", masks)
                    write_json_atomic(path / "sparsity.json", sparsity_report(masks))
                    files += ["masks.pt", "sparsity.json"]
                write_text_atomic(path / "spec.json", spec.to_json() + "\n")
                write_json_atomic(path / "keep.json", keep)
                write_text_atomic(path / "config.yaml", self.config_yaml)
                self.store.commit(path, files, {"stage": "prune", "keep_sha256_per_rank": digests})
            barrier()  # DDP: the other ranks load the pruned weights next
            self._resolve(spec, pruned.state_dict(), masks)
            self._record("prune", key, path, "computed")
            self.records[-1]["keep_sha256_per_rank"] = digests
            return key, path

    def run(self) -> dict[str, Any]:
        """All stages in order; returns the final stage's metrics."""
        plan, metrics = self.plan, {}
        large_key: str | None = None
        for index in range(len(plan.stages)):
            stage = plan.stages[index]
            if stage.name == "pretrain":
                origin = (
                    {"weights_sha256": sha256_file(Path(plan.pretrained_weights))}
                    if plan.pretrained_weights
                    else {"recipe": asdict(stage.recipe)}
                )
                if plan.regularizer and not plan.pretrained_weights:
                    origin["regularizer"] = plan.regularizer
                large_key = content_key(
                    {"stage": "pretrain", "spec": plan.specs["large"].to_dict(), **origin, **self.identity}
                )
                metrics = self._train(stage, large_key, None)
                continue
            initial = None
            if stage.init == "random":
                if large_key is None:
                    self._record("prune", None, None, "predefined target: no trained model needed")
                else:  # an automatic pruner: the architecture (or the masks) come from the trained large model
                    prune_key, _ = self._prune(large_key)
                stage = plan.stages[index]  # its budget may depend on the pruned architecture
                upstream: dict[str, Any] = {"target": plan.specs["pruned"].to_dict()}
                if self.masks is not None:
                    upstream["prune"] = prune_key
                    initial = self._sparse_init(plan.specs["pruned"])
            else:
                prune_key, prune_path = self._prune(large_key)
                stage = plan.stages[index]
                upstream = {"prune": prune_key}
                initial = _load_state(prune_path / ("weights.pt" if stage.init == "pretrained" else "init.pt"))
            key = content_key(
                {"stage": "retrain", **upstream, "init": stage.init, "recipe": asdict(stage.recipe), **self.identity}
            )
            metrics = self._train(stage, key, initial)
        return metrics


def _budget(plan: CellPlan) -> dict[str, Any] | None:
    final = plan.stages[-1]
    if final.name != "retrain":
        return None
    large, pruned = plan.cost("large"), plan.cost("pruned")
    budget = {
        "epochs": final.recipe.epochs,
        "milestones": final.recipe.milestones,
        "flops_ratio": round(large["flops"]["paper"] / pruned["flops"]["paper"], 6),
        "base_epochs": plan.base_epochs,
        "cap": None if plan.budget is None else plan.budget.cap,
        "capped": plan.budget is not None and plan.budget.capped,
    }
    return budget


def run_cell(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the cell described by ``cfg``; write ``result.json`` (and the final spec and weights) under ``run_dir``."""
    plan = build_plan(cfg)
    datamodule = build_datamodule(cfg.dataset, plan.cell["seed"])
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runner = CellRunner(cfg, plan, datamodule, run_dir)
    metrics = runner.run()
    final = plan.stages[-1]
    cost = plan.cost(final.model)
    result = {
        "cell": plan.cell,
        "params": cost["params"],
        "flops": cost["flops"],
        "accuracy": metrics["accuracy"],
        "epochs": final.recipe.epochs,
        "pruning": plan.pruning_summary(),
        "budget": _budget(plan),
        "stages": runner.records,
        "wall_time_s": round(time.perf_counter() - start, 3),
        "git_sha": git_sha(),
        "versions": versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if not is_distributed_follower():
        for record in runner.records:  # per-epoch metrics of every trained stage, beside the result
            csv = Path(record["path"] or "/nonexistent") / "metrics.csv"
            if csv.is_file():
                (run_dir / record["stage"]).mkdir(exist_ok=True)
                shutil.copyfile(csv, run_dir / record["stage"] / "metrics.csv")
        final_dir = Path(runner.records[-1]["path"])
        write_text_atomic(run_dir / "spec.json", plan.specs[final.model].to_json() + "\n")
        shutil.copyfile(final_dir / "weights.pt", run_dir / "weights.pt")
        write_json_atomic(run_dir / "result.json", result)
    return result
