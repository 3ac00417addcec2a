"""Pruners by name. A pruner is one module defining a :class:`Pruner` subclass: its settings schema, what it needs
(:class:`Needs`), and ``decide(context) -> Decision``; decorating it with :func:`register` makes ``pruner=<name>``
work. The plan and the stages ask the pruner (and its needs), never a name list.

A pruner can live in the user's own package: a config option naming its class with ``_target_`` (e.g.
``conf/pruner/mine.yaml``: ``_target_: mypkg.pruners.Mine``) imports it when the config is read; a pruner registered
from Python without a YAML option is offered as ``pruner=<name>`` directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from rethink.errors import UserError
from rethink.kinds import Kinds
from rethink.options import offer_defaults
from rethink.pruning.context import SourceModels
from rethink.settings.schema import PrunerSettings

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from torch import nn

    from rethink.arch.spec import ArchSpec
    from rethink.pruning.context import CalibrationShape, PruneContext
    from rethink.pruning.decision import Decision


@dataclass(frozen=True)
class Curve:
    """Where a cell's result sits among the parameter-efficiency curves of the paper's Figure 3.

    kind: what is pruned, "channels" or "weights" (only curves of one kind are compared);
    role: "automatic" (the pruner found the architecture), "uniform" (the same fraction everywhere), "guided" or
        "transferred guided" (per-stage ratios taken from an automatic decision);
    level: the prune setting (its ratio) of the decision whose parameter count this point matches, so points of one
        level are compared at matched params; None when the point matches none (e.g. uniform at a channel ratio);
    matched: whose decision that is: "automatic" (the automatic pruner's own), "guided" or "transferred guided" (a
        guided pruner's, whose own uniform control — ``pruner=uniform pruner.match=guided``,
        ``pruner=uniform_sparsity`` — matches it too), so each is compared with the uniform control of its own params.
    """

    kind: str
    role: str
    level: float | None
    matched: str = "automatic"


@dataclass(frozen=True)
class SourceCell:
    """The cell whose pruning decision a pruner's target derives from (guided pruning): this cell with another
    ``pruner`` (its option name and settings, e.g. ``{"name": "slimming", "ratio": 0.5}``) and, where not None,
    another model, data set or seed. Its pretrain and prune stages run (or are reused from the store) first."""

    pruner: Mapping[str, Any]
    model: str | None = None
    dataset: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Needs:
    """What a pruner needs, so the plan knows the stages of a cell before anything runs.

    trained_model: its decision reads a trained large model (so it can also hand down inherited weights);
    calibration: it reads training batches (``PruneContext.calibration()``, from ``trainer.datamodule``);
    regularizer: the large model is pretrained with its penalty (:meth:`Pruner.pretrain_callbacks`);
    predefined_target: the pruned architecture is known before training (:meth:`Pruner.target`);
    family: declarations the model's family must make (keys of :data:`rethink.arch.family.DECLARATIONS`).
    """

    trained_model: bool = True
    calibration: bool = False
    regularizer: bool = False
    predefined_target: bool = False
    family: tuple[str, ...] = ()


class Pruner:
    """Decides what to keep of a model. Subclasses set ``name``, ``title``, ``settings_type`` and ``needs`` and
    implement :meth:`decide`; the other hooks have defaults."""

    name: ClassVar[str]
    title: ClassVar[str] = ""  # the heading of its table in the report
    settings_type: ClassVar[type[PrunerSettings]] = PrunerSettings
    needs: ClassVar[Needs] = Needs()
    stretches_scratch_b: ClassVar[bool] = False  # Scratch-B stretches every LR stage (SSS) instead of the epochs
    prunes: ClassVar[bool] = True  # False only for ``pruner=none``: the cell trains the unpruned model
    prunes_weights: ClassVar[bool] = False  # zeroes weights (masks) rather than removing channels or blocks
    table_order: ClassVar[int] = 100  # where its table comes in a report (the paper's methods first)

    def __init__(self, settings: PrunerSettings, model_name: str) -> None:
        self.settings = settings
        self.model_name = model_name  # the model it prunes (``model.name``)

    def requirements(self) -> Needs:
        """What this configured pruner needs (may depend on its settings)."""
        return self.needs

    def check(self, large: "ArchSpec") -> None:
        """Raise ValueError when the settings do not fit the model (the plan reports it before any training)."""

    def check_data(self, large: "ArchSpec", target: "ArchSpec | None", calibration: "CalibrationShape") -> None:
        """Raise ValueError when calibration data of this shape cannot give a data-driven pruner what it needs (the
        plan reports it before any training)."""

    def prepare(self, large: "ArchSpec") -> "ArchSpec":
        """The large model this pruner trains and prunes (e.g. with SSS's branch factors)."""
        return large

    def target(self, large: "ArchSpec") -> "ArchSpec | None":
        """The predefined pruned architecture, or None when training decides it."""
        return None

    def regularizer(self, large: "ArchSpec") -> dict[str, Any] | None:
        """The pretraining penalty as JSON (part of the pretrain stage's key and record), or None."""
        return None

    def source(self) -> SourceCell | None:
        """The cell whose decision this pruner's target (or, with a trained model, its decision) derives from, or
        None (the usual case)."""
        return None

    def check_source(self, large: "ArchSpec", input_size: int, source: SourceModels) -> None:
        """Raise ValueError when the source cell's model cannot guide ``large`` (the plan reports it before any
        training)."""

    def target_from(self, large: "ArchSpec", input_size: int, source: SourceModels) -> "ArchSpec":
        """The pruned architecture, from the source cell's decision (pruners with a :meth:`source`)."""
        raise NotImplementedError

    def round_to(self) -> int | None:
        """The kept-width alignment of a channel pruner (``pruner.round_to``, ``auto`` resolved), or None."""
        value = getattr(self.settings, "round_to", None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def align(self, large: "ArchSpec", target: "ArchSpec") -> "ArchSpec":
        """``target`` with every kept width rounded to ``round_to()`` (:mod:`rethink.pruning.alignment`)."""
        from rethink.pruning.alignment import aligned_target

        return aligned_target(large, target, self.round_to())

    def procedure(self) -> str | None:
        """How this pruner runs, in a phrase for the dry run (e.g. its sampling or optimizer), or None."""
        return None

    def notes(self) -> list[str]:
        """Facts about this pruner's target a result should carry (``pruning.notes``), e.g. a published discrepancy."""
        return []

    def pretrain_callbacks(self, large: "ArchSpec") -> list["pl.Callback"]:
        """Lightning callbacks applying :meth:`regularizer` while the large model trains."""
        return []

    def rounds(self) -> int:
        """Prune-retrain rounds (iterative pruning): each round but the last retrains the original init under the
        decision so far, and the next round decides from the retrained weights."""
        return 1

    def requested(self) -> dict[str, Any]:
        """The settings a run asked for (``pruning.requested`` of result.json)."""
        return {k: v for k, v in self.settings.key_values().items() if k not in ("name", "revision")}

    def decide(self, context: "PruneContext") -> "Decision":
        """What to keep of ``context.model``."""
        raise NotImplementedError

    def apply(self, model: "nn.Module", spec: "ArchSpec", decision: "Decision") -> "nn.Module":
        """``model`` (another copy of ``spec``, e.g. the original initialisation) cut as ``decision`` cut the trained
        one: masked, or shrunk to the kept channels."""
        from rethink.arch.surgery import shrink
        from rethink.pruning.masks import apply_masks

        if decision.masks is not None:
            apply_masks(model, decision.masks)
            return model
        return shrink(model, spec, decision.keep)[1]

    @classmethod
    def row_setting(cls, requested: Mapping[str, Any]) -> dict[str, Any]:
        """The setting that names a report row and keys the published numbers (``{"variant": "A"}``, ``{"ratio":
        0.7}``); by default every requested setting that is set."""
        return {k: v for k, v in requested.items() if v not in (None, [], {})}

    @classmethod
    def curve(cls, requested: Mapping[str, Any]) -> Curve | None:
        """The Figure 3 curve a result of this pruner (with settings ``requested``) belongs to; None: none."""
        return None


KINDS: Kinds[type[Pruner]] = Kinds("pruner", Pruner, lambda cls: getattr(cls, "name", None), "rethink.pruning.Pruner")
PRUNERS = KINDS.classes


def register(cls: type[Pruner]) -> type[Pruner]:
    """Class decorator: make ``cls`` the pruner ``cls.name`` (and offer ``pruner=<name>`` if no YAML option exists)."""
    KINDS.register(cls)
    settings = cls.settings_type
    if not (dataclasses.is_dataclass(settings) and issubclass(settings, PrunerSettings)):
        raise TypeError(f"pruner '{cls.name}': settings_type must be a dataclass subclassing PrunerSettings")
    offer_defaults("pruner", cls.name, cls, lambda: settings(name=cls.name))
    return cls


def names() -> list[str]:
    """The registered pruners: ``none`` first, then in report order."""
    return sorted(PRUNERS, key=lambda name: (PRUNERS[name].prunes, PRUNERS[name].table_order, name))


def lookup(name: str) -> type[Pruner] | None:
    """The registered pruner ``name``, or None."""
    return PRUNERS.get(name)


def pruner_class(node: Mapping[str, Any]) -> type[Pruner]:
    """The pruner a ``pruner`` config group selects: by ``name`` or by ``_target_`` (a class path, imported)."""
    return KINDS.select(node, ", ".join(names()))


def create(settings: PrunerSettings, model_name: str) -> Pruner:
    """The configured pruner of ``settings`` (an instance of a registered pruner's ``settings_type``) for a model."""
    cls = lookup(settings.name)
    if cls is None or not isinstance(settings, cls.settings_type):
        raise UserError(f"pruner.name={settings.name!r} is not known; accepted: {', '.join(names())}.")
    return cls(settings, model_name)
