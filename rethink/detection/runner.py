"""Walk a detection cell: its classification cell's stages (:class:`~rethink.pipeline.runner.CellRunner`: computed,
resumed or reused from the store like any classification cell's), then the detection stages through the same stage
path — the detector trained from the final classification model, and for prune_d the decision on its backbone and
the pruned detector's fine-tuning."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from rethink.arch import ArchSpec
from rethink.detection import keys
from rethink.detection.data import build_detection_datamodule
from rethink.detection.model import load_backbone
from rethink.detection.module import DetectionModule, DetectionRecipe
from rethink.detection.plan import DETECT, DETECT_FINETUNE, DETECT_PRUNE, DetectionPart
from rethink.detection.surgery import backbone_classifier, prune_detector
from rethink.distributed import is_distributed_follower
from rethink.io import save_tensors_atomic, write_json_atomic, write_text_atomic
from rethink.pipeline.plan import CellPlan
from rethink.pipeline.runner import CellRunner, load_state, read_metrics
from rethink.pipeline.stages import Outcome, Produced
from rethink.pruning.context import PruneContext
from rethink.training.loggers import finish, make_loggers, summarize
from rethink.training.trainer import device_label, make_trainer, resumable_checkpoint


class DetectionRunner:
    """Runs a detection cell's stages after its classification cell's (``classification``, a runner of the same
    plan)."""

    def __init__(self, classification: CellRunner) -> None:
        self.classification = classification
        self.records = classification.records
        self.plan: CellPlan = classification.plan
        part: DetectionPart = self.plan.detection
        self.part = part
        self.datamodule = build_detection_datamodule(part.settings.data, self.plan.settings.seed, "task.data")
        self.backbone: ArchSpec | None = None

    # ------------------------------------------------------------------------------------------------ stages

    def _detector_fit(self, stage: str, key: str, spec: ArchSpec, recipe: DetectionRecipe, start: Any) -> Outcome:
        """A detection training stage: the detector of backbone ``spec`` from ``start`` (a callable installing the
        starting weights into the module), trained with ``recipe``; resumes from its epoch checkpoint."""
        run, settings = self.classification.run_context, self.plan.settings

        def compute(path: Path) -> Produced:
            began = time.perf_counter()
            pl.seed_everything(settings.seed, workers=True, verbose=False)
            module = self._module(spec, recipe)
            start(module)
            checkpoint_dir = path / "checkpoints"
            resume = resumable_checkpoint(checkpoint_dir)
            resume_from, resumed_epoch = resume or (None, None)
            loggers = make_loggers(settings, self.plan.cell, run.group, stage, path, run.run_dir, resumed_epoch)
            trainer = make_trainer(settings, recipe.epochs, loggers, checkpoint_dir, (), run.label(stage))
            try:
                trainer.fit(module, datamodule=self.datamodule, ckpt_path=resume_from, weights_only=True)
                scores = {"final": dict(module.last), "best": dict(module.best)}
                summarize(loggers, {**module.last, "epochs": recipe.epochs})
            finally:
                finish(settings, loggers)
            metrics = {
                "detection": scores,
                "recipe": dataclasses.asdict(recipe),
                "compute_s": round(time.perf_counter() - began, 2),
                "device": device_label(trainer),
            }
            if trainer.is_global_zero:
                save_tensors_atomic(path / "weights.pt", module.detector.state_dict())
                write_text_atomic(path / "spec.json", spec.to_json() + "\n")
                write_json_atomic(path / "metrics.json", metrics)
            files = [f for f in ("weights.pt", "spec.json", "metrics.json", "metrics.csv") if (path / f).exists()]
            return Produced(files, metrics, "resumed" if resume_from else "computed")

        outcome = self.classification.stages.run(stage, key, compute, read_metrics)
        payload = outcome.payload
        extra = {k: payload[k] for k in ("compute_s", "device") if k in payload}
        self.records.append(
            {"stage": stage, "key": key, "path": str(outcome.path), "status": outcome.status,
             "detection": payload["detection"], **extra}
        )  # fmt: skip
        return outcome

    def _module(self, spec: ArchSpec, recipe: DetectionRecipe) -> DetectionModule:
        s = self.part.settings
        classes = self.datamodule.num_classes
        return DetectionModule(spec, classes, s.head, recipe, s.min_size, s.max_size, s.trainable_layers)

    def _recipe(self, epochs: int, lr: float, warmup: bool) -> DetectionRecipe:
        s, optim = self.part.settings, self.plan.settings.optim
        warmup_iters, factor = (s.warmup_iters, s.warmup_factor) if warmup else (0, 1.0)
        milestones = tuple(s.milestones) if warmup else ()
        return DetectionRecipe(
            epochs,
            lr,
            optim.momentum,
            optim.weight_decay,
            warmup_iters,
            factor,
            milestones,
            optim.lr_gamma,
            s.clip_norm,
        )

    def _detect(self, backbone_key: str, spec: ArchSpec, state: dict[str, torch.Tensor]) -> Outcome:
        s = self.part.settings
        recipe = self._recipe(s.epochs, s.lr, warmup=True)
        return self._detector_fit(
            DETECT, keys.detect_key(self.plan, backbone_key, spec), spec, recipe,
            lambda module: load_backbone(module.detector, state),
        )  # fmt: skip

    def _prune(self, detect: Outcome, spec: ArchSpec) -> tuple[Outcome, ArchSpec]:
        """prune_d's decision: the pruner decides on a classification model holding the detector's backbone."""
        part, plan = self.part, self.plan
        assert part.pruner is not None and part.pruned is not None
        key = keys.detect_prune_key(plan, detect.key)

        def compute(path: Path) -> Produced:
            began = time.perf_counter()
            module = self._module(spec, self._recipe(1, self.part.settings.lr, warmup=False))
            module.detector.load_state_dict(load_state(detect.path / "weights.pt"), strict=True)
            classifier = backbone_classifier(module.detector, spec)
            context = PruneContext(classifier, spec, plan.model_name, plan.settings.seed, part.pruned)
            decision = part.pruner.decide(context)
            pruned_spec, pruned = prune_detector(module.detector, spec, decision.keep)
            if not is_distributed_follower():
                save_tensors_atomic(path / "weights.pt", pruned.state_dict())
                write_text_atomic(path / "spec.json", pruned_spec.to_json() + "\n")
                write_json_atomic(path / "keep.json", decision.keep)
            meta = {"compute_s": round(time.perf_counter() - began, 2), "device": "cpu"}  # the surgery runs on the CPU
            return Produced(["weights.pt", "spec.json", "keep.json"], pruned_spec, meta=meta)

        def load(path: Path) -> ArchSpec:
            return ArchSpec.from_json((path / "spec.json").read_text())

        outcome = self.classification.stages.run(DETECT_PRUNE, key, compute, load)
        record = {"stage": DETECT_PRUNE, "key": key, "path": str(outcome.path), "status": outcome.status}
        self.records.append({**record, **{k: v for k, v in outcome.meta.items() if k in ("compute_s", "device")}})
        return outcome, outcome.payload

    def _finetune(self, prune: Outcome, spec: ArchSpec) -> Outcome:
        s = self.part.settings
        recipe = self._recipe(s.finetune_epochs, s.finetune_lr, warmup=False)
        state = load_state(prune.path / "weights.pt")
        return self._detector_fit(
            DETECT_FINETUNE, keys.detect_finetune_key(self.plan, prune.key), spec, recipe,
            lambda module: module.detector.load_state_dict(state, strict=True),
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------------- cell

    def run(self) -> Outcome:
        """The classification stages, then the detection stages; returns the last detection stage."""
        self.classification.run()
        plan = self.plan = self.classification.plan
        final = self.records[-1]
        spec = plan.specs[plan.retrain.model]
        outcome = self._detect(final["key"], spec, load_state(Path(final["path"]) / "weights.pt"))
        self.backbone = spec
        if self.part.pruner is not None:
            prune, pruned = self._prune(outcome, spec)
            outcome = self._finetune(prune, pruned)
            self.backbone = pruned
        return outcome
