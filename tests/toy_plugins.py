"""What a user's own package would hold: two pruners and two architecture families, registered through rethink's
public registries only (nothing under rethink/ names them). tests/test_extensions.py and tests/test_ddp.py use them.

- :class:`EveryOther` keeps every other channel of every channel group (a rule, no data).
- :class:`ActivationPruner` is data-driven: it reads the calibration batches and keeps, in every conv group, the
  channels with the largest mean absolute activation. With ``TOY_DECISIONS_DIR`` set, every decision leaves a file
  naming its rank and process (the DDP test counts them).
- Family ``toy_chain`` (model ``toynet``): a conv-BN-ReLU chain declaring its channel groups and a reference conv
  numbering; its ``Gate`` layer declares its own FLOP rule. Family ``toy_plain`` (model ``toyplain``): the same net
  declaring nothing a pruner could use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rethink.arch import ArchSpec, Family, register_family, register_model
from rethink.arch.family import GroupSlot, Layer, NumberedConv, chain
from rethink.arch.surgery import prunable_groups, shrink
from rethink.pruning import Decision, Needs, PruneContext, Pruner, PrunerSettings, register
from rethink.pruning.criteria import keep_largest
from rethink.settings.typed import Ratio

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
