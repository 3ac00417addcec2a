"""What ThiNet and regression pruning share: their settings and target widths, and the layer-by-layer decision that
each specialises with its channel selection (:mod:`rethink.pruning.reconstruction`).

A target is exactly one of: ``variant``, a published architecture of the pruner (ImageNet VGG-16 / ResNet-50,
:mod:`rethink.pruning.published_targets`) or an L1-norm variant of the model (``A``, ``B``: the same widths as
``pruner=l1``, to compare selection criteria on one trained model); ``stage_ratios`` / ``layer_ratios`` (the L1-norm
rule on the reference conv numbering); or ``ratio``, the per-layer compression: every channel group keeps
``floor(width * (1 - ratio))`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from rethink.arch.registry import build
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_widths
from rethink.errors import UserError
from rethink.pruning.context import CalibrationShape, PruneContext
from rethink.pruning.decision import Decision
from rethink.pruning.l1 import L1, FilterTargetSettings, ratio_target
from rethink.pruning.published_targets import Target
from rethink.pruning.reconstruction import AfterLayer, Rebuilt, Sampling, prune_layer_by_layer
from rethink.pruning.registry import Needs
from rethink.pruning.sampling import Branch, Samples, check_positions
from rethink.pruning.targets import PREDEFINED
from rethink.settings.typed import PositiveInt


@dataclass(frozen=True)
class LayerwiseSettings(FilterTargetSettings):
    """A target (``variant``, L1 ratios, or ``ratio``) and how many output positions of each reader layer are
    sampled on the calibration images: ``samples`` in all, ``positions_per_image`` distinct ones from every image in
    turn (ThiNet and He et al.: 10), or, unset, spread evenly over the calibration batches."""

    samples: PositiveInt = 2000
    positions_per_image: PositiveInt | None = None
    added_later: ClassVar[tuple[str, ...]] = ("round_to", "positions_per_image")  # its ratio was there from the start

    def validate(self, prefix: str) -> None:
        given = [self.variant is not None, self.stage_ratios is not None or self.layer_ratios is not None]
        if sum(given) + (self.ratio is not None) != 1:
            raise UserError(
                f"pruner={self.name} needs exactly one target: {prefix}.variant, {prefix}.stage_ratios / "
                f"{prefix}.layer_ratios, or {prefix}.ratio (the per-layer compression in (0, 1))."
            )
        if self.ratio is not None and self.ratio <= 0:
            raise UserError(f"{prefix}.ratio={self.ratio}: expected the per-layer compression in (0, 1).")


class LayerwisePruner(L1):
    """A data-driven pruner deciding group by group in network order; subclasses give ``published`` targets and
    ``select``."""

    published: ClassVar[dict[str, Target]] = {}
    to_original: ClassVar[bool] = False  # reconstruct the original network's outputs (else the current ones)

    def _published(self) -> Target | None:
        target = self.published.get(str(self.settings.variant))
        return target if target is not None and target.model == self.model_name else None

    def requirements(self) -> Needs:
        s = self.settings
        family: tuple[str, ...] = ("channel_groups", "group_readers")
        if s.stage_ratios is not None or s.layer_ratios is not None or (self.model_name, s.variant) in PREDEFINED:
            family += ("filter_numbering",)
        return Needs(trained_model=True, calibration=True, predefined_target=True, family=family)

    def requested(self) -> dict[str, Any]:
        s = self.settings
        sampling = {"samples": s.samples, "positions_per_image": s.positions_per_image}
        return {**super().requested(), "ratio": s.ratio, **sampling}

    def target(self, large: ArchSpec) -> ArchSpec:
        s = self.settings
        if s.ratio is not None:
            return ratio_target(large, s.ratio)
        if s.variant is None or (self.model_name, s.variant) in PREDEFINED:
            return super().target(large)
        if self._published() is None:
            accepted = [v for v, t in self.published.items() if t.model == self.model_name]
            accepted += sorted(v for m, v in PREDEFINED if m == self.model_name)
            of = self.published.get(str(s.variant))
            what = f"a {self.name} target of model '{of.model}'" if of else f"not a {self.name} target"
            raise ValueError(
                f"variant {s.variant!r} is {what}; accepted for model '{self.model_name}': "
                f"{', '.join(accepted) or 'none (give ratio, stage_ratios or layer_ratios)'}"
            )
        return self._published().make(large)

    def procedure(self) -> str | None:
        s = self.settings
        where = (
            "spread over the calibration batches"
            if s.positions_per_image is None
            else (f"{s.positions_per_image} positions per image")
        )
        return f"{s.samples:,} samples per layer, {where}"

    def notes(self) -> list[str]:
        published = self._published()
        return [] if published is None else list(published.notes)

    def select(self, samples: Samples, keep: int, generator: torch.Generator) -> Rebuilt:
        """The ``keep`` channels to keep of a sampled reader and its rebuilt weight (and bias), with notes."""
        raise NotImplementedError

    def after_layer(self, context: PruneContext) -> AfterLayer | None:
        """What runs on the network after each pruned group (ThiNet's fine-tune), or None."""
        return None

    def branches(self, spec: ArchSpec) -> dict[str, Branch]:
        """The readers sampled with the multi-branch target (reader name -> its residual block); none here."""
        return {}

    def _prepared(self, model: nn.Module, spec: ArchSpec) -> tuple[nn.Module, ArchSpec]:
        """The network as the published target prunes it (ResNet-50-2x: with a selection before every conv1)."""
        published = self._published()
        if published is None or published.prepare is None:
            return model, spec
        spec = published.prepare(spec)
        prepared = build(spec)
        state = prepared.state_dict() | model.state_dict()
        prepared.load_state_dict(state, strict=True)
        return prepared.to(next(model.parameters()).device).train(model.training), spec

    def check_data(self, large: ArchSpec, target: ArchSpec | None, calibration: CalibrationShape) -> None:
        published = self._published()
        if target is not None:
            prepared = large if published is None or published.prepare is None else published.prepare(large)
            check_positions(prepared, target, self.settings.samples, calibration, self.settings.positions_per_image)

    def _finished(self, model: nn.Module, spec: ArchSpec, seed: int) -> tuple[nn.Module, ArchSpec, list[str]]:
        """The thinned network in the published target's form (VGG-GAP / VGG-Tiny: the GAP head), with the names of
        its new layers' tensors, which start from the family's initialisation seeded by ``seed``."""
        published = self._published()
        if published is None or published.finish is None:
            return model, spec, []
        spec = published.finish(spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            finished = build(spec)
        state, old = finished.state_dict(), model.state_dict()
        fresh = [k for k, v in state.items() if k not in old or old[k].shape != v.shape]
        finished.load_state_dict({k: state[k] if k in fresh else old[k] for k in state}, strict=True)
        return finished.to(next(model.parameters()).device).train(model.training), spec, fresh

    def decide(self, context: PruneContext) -> Decision:
        context.model, context.spec = self._prepared(context.model, context.spec)
        s = self.settings
        sampling = Sampling(s.samples, s.positions_per_image, self.to_original, self.branches(context.spec))
        decision = prune_layer_by_layer(context, context.target, sampling, self.select, self.after_layer(context))
        published = self._published()
        if published is not None and published.finish is not None:
            thinned = build(decision.spec)
            thinned.load_state_dict(decision.state, strict=True)
            network, decision.spec, fresh = self._finished(thinned, decision.spec, context.seed)
            decision.state = {k: v.cpu() for k, v in network.state_dict().items()}
            decision.notes |= {"fresh_layers": fresh, "fresh_seed": context.seed}
        if group_widths(decision.spec) != group_widths(context.target):
            raise RuntimeError("layer-by-layer pruning missed its target widths")  # an internal invariant
        return decision

    def apply(self, model: nn.Module, spec: ArchSpec, decision: Decision) -> nn.Module:
        thinned = super().apply(*self._prepared(model, spec), decision)
        # the published form of decision.spec is decision.spec itself: finishing only adds the fresh layers
        return self._finished(thinned, decision.spec, decision.notes.get("fresh_seed", 0))[0]

    @classmethod
    def row_setting(cls, requested: dict[str, Any]) -> dict[str, Any]:
        if requested.get("ratio") is not None:
            return {"ratio": requested["ratio"]}
        return super().row_setting(requested)
