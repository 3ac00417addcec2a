"""What a user's own package would hold: two pruners, two architecture families, a data set and a schedule,
registered through rethink's public registries only (nothing under rethink/ names them). tests/test_extensions.py,
tests/test_plugin_kinds.py and tests/test_ddp.py use them.

- :class:`EveryOther` keeps every other channel of every channel group (a rule, no data).
- :class:`ActivationPruner` is data-driven: it reads the calibration batches and keeps, in every conv group, the
  channels with the largest mean absolute activation. With ``TOY_DECISIONS_DIR`` set, every decision leaves a file
  naming its rank and process (the DDP test counts them).
- Family ``toy_chain`` (model ``toynet``): a conv-BN-ReLU chain declaring its channel groups and a reference conv
  numbering; its ``Gate`` layer declares its own FLOP rule. Family ``toy_plain`` (model ``toyplain``): the same net
  declaring nothing a pruner could use. Model ``toynet24``: the ``toy_chain`` net for 24x24 images (its own domain).
- Data set ``stripes24`` (:class:`Stripes`): procedural 24x24 images, class k striped at angle k x 180°/classes.
- Schedule ``scratch_half`` (:class:`HalfScratch`): a fresh init trained for half the large model's epochs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rethink.arch import ArchSpec, Family, register_family, register_model
from rethink.arch.family import GroupSlot, Layer, NumberedConv, chain
from rethink.arch.surgery import prunable_groups, shrink
from rethink.data import ImageArrays, InMemoryDataset, register_dataset
from rethink.pipeline.budget import Budget
from rethink.pipeline.schedules import Schedule, register_schedule
from rethink.pruning import Decision, Needs, PruneContext, Pruner, PrunerSettings, register
from rethink.pruning.criteria import keep_largest
from rethink.settings.schema import FRESH, Init, OptimSettings, RecipeDefaults
from rethink.settings.typed import NonNegativeInt, PositiveInt, Ratio
from rethink.training.recipes import Recipe, make_recipe

# ------------------------------------------------------------------------------------------------------ pruners


@dataclass(frozen=True)
class EveryOtherSettings(PrunerSettings):
    name: str = "every_other"
    offset: int = 0  # keep channels offset, offset + 2, ...


@register
class EveryOther(Pruner):
    """Keeps channels ``offset, offset + 2, ...`` of every group."""

    name = "every_other"
    title = "Every other channel (a toy)"
    settings_type = EveryOtherSettings
    needs = Needs(trained_model=True, family=("channel_groups",))

    def decide(self, context: PruneContext) -> Decision:
        offset = self.settings.offset
        keep = {g.name: list(range(offset % 2, g.width, 2)) for g in prunable_groups(context.spec) if g.width > 1}
        spec, pruned = shrink(context.model, context.spec, keep)
        return Decision(spec, pruned.state_dict(), keep)


@dataclass(frozen=True)
class ActivationSettings(PrunerSettings):
    name: str = "activation"
    keep_fraction: Ratio = 0.5


@register
class ActivationPruner(Pruner):
    """Keeps the channels of largest mean |activation| over the calibration batches, in every conv group."""

    name = "activation"
    title = "Mean activation (a toy data-driven pruner)"
    settings_type = ActivationSettings
    needs = Needs(trained_model=True, calibration=True, family=("channel_groups",))

    def decide(self, context: PruneContext) -> Decision:
        groups = [g for g in prunable_groups(context.spec) if g.kind == "conv" and g.width > 1]
        totals = {g.name: torch.zeros(g.width) for g in groups}
        network = context.model.to(context.device).eval()

        def record(name: str):
            def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
                totals[name] += output.abs().mean((0, 2, 3)).cpu()

            return hook

        hooks = [network.get_submodule(str(g.producer)).register_forward_hook(record(g.name)) for g in groups]
        batches = context.calibration()
        with torch.no_grad():
            for images, _ in batches:
                network(images)
        for hook in hooks:
            hook.remove()
        network.cpu()
        fraction = self.settings.keep_fraction
        keep = {g.name: keep_largest(totals[g.name], max(1, round(g.width * fraction))) for g in groups}
        spec, pruned = shrink(network, context.spec, keep)
        notes = {"calibration_batches": len(batches), "calibration_images": sum(len(y) for _, y in batches)}
        if os.environ.get("TOY_DECISIONS_DIR"):
            rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
            (Path(os.environ["TOY_DECISIONS_DIR"]) / f"rank{rank}-pid{os.getpid()}").touch()
        return Decision(spec, pruned.state_dict(), keep, notes=notes)


# ----------------------------------------------------------------------------------------------------- families


class Gate(nn.Module):
    """A learnable per-channel gate: a layer type the FLOP counter knows only from its family's declaration."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def gate_cost(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    return 0, output[0].numel()  # one multiply per element


class ToyNet(nn.Module):
    """conv3x3-BN-ReLU x len(widths) (a max-pool after the first), a gate, global average pool, Linear."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for index, width in enumerate(spec.config["widths"]):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            layers += [nn.MaxPool2d(2)] if index == 0 else []
            channels = width
        self.features = nn.Sequential(*layers)
        self.gate = Gate(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.gate(self.features(x))), 1))


def _modules(config: dict[str, Any]) -> list[int]:
    """Index of each conv in ``features`` (conv, BN, ReLU, and a pool after the first)."""
    return [3 * i + (i > 0) for i in range(len(config["widths"]))]


def toy_groups(config: dict[str, Any]) -> list[GroupSlot]:
    """Every conv's outputs; the last one is read by the gate and the classifier, so it stays whole."""
    layers = [
        Layer(f"features.{m}", f"features.{m + 1}", "conv", ("widths", i), width)
        for i, (m, width) in enumerate(zip(_modules(config), config["widths"]))
    ]
    return chain(layers[:-1], (f"features.{_modules(config)[-1]}", 1))


def toy_numbering(config: dict[str, Any]) -> list[NumberedConv]:
    """Conv ids from 1; the first conv is stage 0 (before the pool), the others stage 1."""
    return [NumberedConv(i + 1, int(i > 0), f"features.{m}") for i, m in enumerate(_modules(config)[:-1])]


def _maker(family: str):
    def make_spec(num_classes: int, width: int = 8) -> ArchSpec:
        return ArchSpec(family, num_classes, {"widths": [width, 2 * width, 2 * width]})

    return make_spec


register_family(
    Family(
        "toy_chain", ToyNet, channel_groups=toy_groups, filter_numbering=toy_numbering, layer_costs={Gate: gate_cost}
    )
)
register_family(Family("toy_plain", ToyNet))
register_model("toynet", "cifar", _maker("toy_chain"), "a toy conv chain declaring its groups", options={"width": 8})
register_model("toyplain", "cifar", _maker("toy_plain"), "the same net declaring nothing", options={"width": 8})


class Uncounted(ToyNet):
    """The toy net with a SiLU after its features: a layer type nobody declared a FLOP rule for."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__(spec)
        self.gate = nn.SiLU()


register_family(Family("toy_uncounted", Uncounted))
register_model("toyuncounted", "cifar", _maker("toy_uncounted"), "a toy net whose SiLU has no cost rule", options={})
register_model(
    "toynet24", "toy", _maker("toy_chain"), "a toy conv chain for 24x24 images", options={"width": 8}, input_size=24
)

# ----------------------------------------------------------------------------------------- data set, schedule


@register_dataset
@dataclass(frozen=True)
class Stripes(InMemoryDataset):
    """Procedural 24x24 images: class k is a grating at angle k x 180°/num_classes with a random phase, frequency
    and colour per image, plus noise (seeded by ``data_seed``; train and test drawn apart)."""

    option_name, title = "stripes24", "Stripes 24x24 (a toy procedural set)"
    num_classes: PositiveInt = 4
    image_size: PositiveInt = 24
    batch_size: PositiveInt = 32
    test_batch_size: PositiveInt = 128
    recipe: RecipeDefaults = field(
        default_factory=lambda: RecipeDefaults(
            epochs=2, lr=0.05, milestone_fractions=[0.5], finetune_epochs=1, finetune_lr=0.01
        )
    )
    num_train: PositiveInt = 256
    num_test: PositiveInt = 128
    data_seed: NonNegativeInt = 0

    def _split(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, self.num_classes, (count,), generator=generator)
        size = self.image_size
        y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
        angle = labels.float() * math.pi / self.num_classes
        frequency = 0.15 + 0.1 * torch.rand(count, generator=generator)
        phase = 2 * math.pi * torch.rand(count, generator=generator)
        along = x * torch.cos(angle)[:, None, None] + y * torch.sin(angle)[:, None, None]
        grating = torch.sin(2 * math.pi * frequency[:, None, None] * along + phase[:, None, None])
        colour = 0.5 + 0.5 * torch.rand(count, 3, 1, 1, generator=generator)
        noise = 0.2 * torch.randn(count, 3, size, size, generator=generator)
        images = (0.5 + 0.4 * grating[:, None] * colour + noise).clamp(0, 1)
        return (images * 255).to(torch.uint8), labels

    def arrays(self) -> ImageArrays:
        generator = torch.Generator().manual_seed(self.data_seed)
        x_train, y_train = self._split(self.num_train, generator)
        x_test, y_test = self._split(self.num_test, generator)
        return ImageArrays(x_train, y_train, x_test, y_test)

    def all_train_images(self) -> int:
        return self.num_train


@register_schedule
@dataclass(frozen=True)
class HalfScratch(Schedule):
    """The pruned architecture from a fresh initialisation, trained for half the large model's epochs (at least
    one) at its learning rate, the LR dropping at ``milestone_fractions`` of them."""

    name: str = "scratch_half"
    init: Init = FRESH
    milestone_fractions: list[float] = field(default_factory=lambda: [0.5])
    title, column_order, role = "Scratch-half (half the epochs)", 8, "scratch"

    def retrain_recipe(
        self, pretrain: Recipe, optim: OptimSettings, flops_ratio: float | None, stretch: bool
    ) -> tuple[Recipe | None, Budget | None]:
        epochs = max(1, pretrain.epochs // 2)
        return make_recipe("schedule", epochs, pretrain.lr, None, self.milestone_fractions, optim), None
