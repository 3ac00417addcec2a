"""The schemas of the config groups and :class:`Settings`, all a cell runs with: typed, frozen, validated once at
entry (:func:`rethink.pipeline.config.load_settings`). The data set, pruner and schedule options subclass the bases
here with schemas of their own (:mod:`rethink.data.registry`, :mod:`rethink.pruning`,
:mod:`rethink.pipeline.schedules`)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Mapping

from rethink.errors import UserError
from rethink.settings.typed import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class PretrainSettings:
    """The large model's training (``pretrain.*``)."""

    epochs: PositiveInt
    lr: PositiveFloat
    milestones: list[NonNegativeInt] | None = None  # explicit LR-drop epochs; None: the data set's fractions
    weights: str | None = None  # a trained large model to import instead of training it


@dataclass(frozen=True)
class OptimSettings:
    """SGD of every stage (``optim.*``)."""

    momentum: NonNegativeFloat = 0.9
    weight_decay: NonNegativeFloat = 1.0e-4
    nesterov: bool = False
    lr_gamma: PositiveFloat = 0.1

    def validate(self, prefix: str) -> None:
        for name in ("momentum", "lr_gamma"):
            if getattr(self, name) > 1:
                raise UserError(f"{prefix}.{name}={getattr(self, name)!r}: expected a number <= 1.")


class Keyed:
    """Settings hashed into stage keys. ``added_later``: settings added after results were stored, left out of the
    stage keys while at their default so those results stay valid."""

    added_later: ClassVar[tuple[str, ...]] = ()

    revision: ClassVar[int] = 0  # bumped when the same settings decide differently, so stored results are not reused

    def key_values(self) -> dict[str, Any]:
        """The settings a stage key hashes: all but those ``added_later`` still at their default, and a non-zero
        ``revision``."""
        defaults = {f.name: _default(f) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        kept = {k: v for k, v in values.items() if not (k in self.added_later and v == defaults[k])}
        return kept | ({"revision": self.revision} if self.revision else {})


def _default(field: dataclasses.Field) -> Any:
    """A field's default as :func:`dataclasses.asdict` gives its value (a ``default_factory``'s dataclass as a dict)."""
    value = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


@dataclass(frozen=True)
class CalibrationSettings(Keyed):
    """Training images a data-driven pruner reads (``calibration.*``), without augmentation: the first ``batches``
    batches of a seeded order of the training set or, with ``images_per_class``, that many images of every class
    (the first of each class in that order; ``batches`` is then unused)."""

    batches: PositiveInt = 8
    images_per_class: PositiveInt | None = None
    added_later: ClassVar[tuple[str, ...]] = ("images_per_class",)

    def images(self, batch_size: int, num_classes: int) -> int:
        """How many calibration images are read."""
        return self.batches * batch_size if self.images_per_class is None else self.images_per_class * num_classes


@dataclass(frozen=True)
class LaunchSettings:
    """How a multirun's jobs share the node's devices (``launch.*``; :mod:`rethink.launch`)."""

    device_slots: PositiveInt | None = None  # the node's devices (GPUs), one cell each at a time; None: no pinning


@dataclass(frozen=True)
class ModelSettings:
    """``model.name`` and its options (checked by the model's own spec maker when the plan is built)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WandbSettings:
    project: str = "rethink"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = None  # None: online only with an API key
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoggerSettings:
    csv: bool = True
    wandb: WandbSettings | None = None


@dataclass(frozen=True)
class PathsSettings:
    root_dir: str = "."
    data_dir: str = "data"
    artifact_dir: str = "artifacts"
    cifar10_npz: str | None = None
    cifar100_npz: str | None = None
    imagenet_root: str | None = None


# Trainer arguments a stage sets itself (a schedule gives the epochs; loggers, callbacks, checkpoints are the
# stage's): a trainer.* override of one of them is refused with the setting to use instead.
EPOCHS = "pretrain.epochs (the large model's training) and schedule.epochs (the retraining), e.g. pretrain.epochs=3"
RESERVED_TRAINER_ARGS = {
    "max_epochs": EPOCHS,
    "min_epochs": EPOCHS,
    "max_steps": EPOCHS,
    "logger": "logger=csv|wandb",
    "callbacks": "a pruner's or the stage's own callbacks",
    "default_root_dir": "paths.artifact_dir",
    "use_distributed_sampler": "nothing: the data modules shard themselves",
    "plugins": "nothing: the stage writes its checkpoints atomically",
    "num_sanity_val_steps": "nothing",
}


def reserved_trainer_arg(key: str, prefix: str = "trainer") -> str:
    """The message for a ``trainer.*`` setting a stage sets itself (a key of :data:`RESERVED_TRAINER_ARGS`)."""
    return f"{prefix}.{key} is set by each stage itself; use {RESERVED_TRAINER_ARGS[key]}."


@dataclass(frozen=True)
class TrainerSettings:
    """Keyword arguments of Lightning's ``Trainer`` (``trainer.*``), checked against its signature."""

    arguments: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any], prefix: str = "trainer") -> "TrainerSettings":
        import inspect

        import pytorch_lightning as pl

        accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
        for key in data:
            if key in RESERVED_TRAINER_ARGS:
                raise UserError(reserved_trainer_arg(key, prefix))
            if key not in accepted:
                raise UserError(
                    f"{prefix}.{key}: not an argument of Lightning's Trainer; see "
                    "https://lightning.ai/docs/pytorch/stable/common/trainer.html for the accepted ones."
                )
        return cls(MappingProxyType(dict(data)))


@dataclass(frozen=True)
class RecipeDefaults:
    """The data set's paper recipe (``dataset.recipe.*``), which ``pretrain.*`` and the schedules default to."""

    epochs: PositiveInt
    lr: PositiveFloat
    milestone_fractions: list[float]
    finetune_epochs: PositiveInt
    finetune_lr: PositiveFloat
    scratch_b_milestone_rule: Literal["fraction", "step"] = "fraction"
    scratch_b_cap: PositiveFloat | None = None

    def validate(self, prefix: str) -> None:
        fractions = self.milestone_fractions
        if any(not 0 < f < 1 for f in fractions) or any(b <= a for a, b in zip(fractions, fractions[1:])):
            raise UserError(
                f"{prefix}.milestone_fractions={fractions}: expected increasing fractions of the epochs in (0, 1), "
                "e.g. [0.5,0.75]."
            )


@dataclass(frozen=True)
class DatasetSettings:
    """What every data set has (``dataset.*``)."""

    name: str
    num_classes: PositiveInt
    image_size: PositiveInt
    batch_size: PositiveInt
    test_batch_size: PositiveInt
    recipe: RecipeDefaults
    train_subset: PositiveInt | None = None  # train on the first N images of a fixed shuffle (quick runs)
    test_subset: PositiveInt | None = None
    mean: list[float] | None = None  # per-channel normalisation; None: computed from the training split
    std: list[float] | None = None
    augment: bool = True


@dataclass(frozen=True)
class PrunerSettings(Keyed):
    """Base of every pruner's settings schema: ``name`` selects the pruner; subclasses add their settings (each with
    a default, and ranges in the annotations, see :mod:`rethink.settings.typed`; ``added_later``: :class:`Keyed`)."""

    name: str


# where a retraining's weights start (``schedule.init``): the pruned model's inherited weights, a fresh
# initialisation, or the large model's original initialisation cut to the pruned architecture (lottery tickets)
INHERITED, FRESH, ORIGINAL = "pretrained", "random", "original"
Init = Literal["pretrained", "random", "original"]


@dataclass(frozen=True)
class ScheduleSettings:
    """``schedule.name`` and where the retrained weights start (``init``; None for ``baseline``, which retrains
    nothing). Each schedule option subclasses it (:mod:`rethink.pipeline.schedules`)."""

    name: str
    init: Init | None = None


AUTO = "auto"


@dataclass(frozen=True)
class SpeedSettings:
    """How fast a stage trains (``speed.*``, :mod:`rethink.training.speed`): ``channels_last`` memory format —
    ``auto`` (the model family's measured choice, ``Family.channels_last``), true or false — and ``compile``, the
    model compiled with ``torch.compile`` for training (a warm-up of about a minute on a CPU)."""

    channels_last: Literal["auto", True, False] = AUTO
    compile: bool = False


@dataclass(frozen=True)
class TaskSettings:
    """``task.name``: what the cell trains — ``classification`` (the paper's tables) or another task's option, whose
    schema subclasses this one (``detection``: :mod:`rethink.detection.settings`)."""

    name: str = "classification"


@dataclass(frozen=True)
class Settings:
    """Everything a cell runs with: one validated, immutable object per config group, and the resolved config."""

    seed: NonNegativeInt
    dataset: DatasetSettings
    model: ModelSettings
    pruner: PrunerSettings
    schedule: ScheduleSettings
    pretrain: PretrainSettings
    optim: OptimSettings
    calibration: CalibrationSettings
    trainer: TrainerSettings
    logger: LoggerSettings
    paths: PathsSettings
    task: TaskSettings = TaskSettings()
    speed: SpeedSettings = SpeedSettings()
    launch: LaunchSettings = LaunchSettings()
    progress_bar: Literal["auto", "rich", "tqdm", "lines"] = "auto"
    dry_run: Literal[False, True, "json"] = False  # true: for people (a sweep: a table); json: for programs
    verbose: bool = False  # Lightning's own info lines and library warnings (rethink.training.console)
    plugins: tuple[str, ...] = ()  # the user's modules imported before the groups are parsed (rethink.plugins)
    resolved: Mapping[str, Any] = field(default_factory=dict, compare=False)  # the composed config, resolved

    def config(self) -> dict[str, Any]:
        """The resolved config as a fresh plain dict (for result.json, W&B and each stage's config.yaml)."""
        return copy.deepcopy(dict(self.resolved))
