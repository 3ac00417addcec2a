"""The pruned architectures ThiNet (Luo et al., 2017) and regression-based channel pruning (He et al., 2017) published
for ImageNet (docs/protocol.md#thinet, #regression), as data.

Widths are stored as published and applied as keep fractions of the full model's widths, so a width-scaled model
(``model.width_multiplier``, e.g. the CPU miniatures) gets the same shape and the full model exactly the published
one. ResNet-50-2x also selects, per bottleneck, the residual-stream channels its conv1 reads; its masks come from the
released model (``data/resnet50_2x.json``) and apply at full width (a scaled model reads its first channels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

from rethink.arch.imagenet_resnet import with_input_selection
from rethink.arch.imagenet_vgg import VGG_FEATURES
from rethink.arch.layers import POOL
from rethink.arch.spec import ArchSpec

M = POOL
_VGG16 = VGG_FEATURES["D"]
_RESNET50_PLANES = (64, 128, 256, 512)


@dataclass(frozen=True)
class Target:
    """A published pruned architecture of ``model``: how to make it from the (possibly width-scaled) large spec."""

    model: str
    make: Callable[[ArchSpec], ArchSpec]
    notes: tuple[str, ...] = ()  # facts a result should carry (e.g. a discrepancy in the original code)
    prepare: Callable[[ArchSpec], ArchSpec] | None = None  # the large spec as the pruner thins it (same function)
    finish: Callable[[ArchSpec], ArchSpec] | None = None  # the thinned spec in the published form (new layers: fresh)


def _keep(large: int, published: int, full: int) -> int:
    """``published`` of ``full`` channels, as a fraction of a width-scaled layer of ``large`` channels."""
    return max(1, round(large * published / full))


def _vgg(features: list[int | str], head: str = "fc") -> Callable[[ArchSpec], ArchSpec]:
    """A VGG-16 with the published conv widths (``head="gap"``: no last pool, a global-average-pool head)."""

    def make(large: ArchSpec) -> ArchSpec:
        convs = iter(w for w in large.config["features"] if w != POOL)
        full = iter(w for w in _VGG16 if w != POOL)
        widths = [w if w == POOL else _keep(next(convs), int(w), int(next(full))) for w in features]
        if head == "fc":
            return large.replace_config(features=widths)
        return large.replace_config(features=widths, classifier=[], head=head)

    return make


def _gap_head(pruned: ArchSpec) -> ArchSpec:
    """ThiNet's VGG-GAP / VGG-Tiny made from a thinned VGG-16: the last pool and the FC layers give way to a global
    average pool and one Linear (ThiNet prunes the convs, then replaces the head and fine-tunes)."""
    features = list(pruned.config["features"])
    while features[-1] == POOL:
        features.pop()
    return pruned.replace_config(features=features, classifier=[], head="gap")


def _thinet_resnet(stage_widths: tuple[int, ...]) -> Callable[[ArchSpec], ArchSpec]:
    """A ResNet-50 whose bottlenecks' conv1 and conv2 keep the published width of their stage."""

    def make(large: ArchSpec) -> ArchSpec:
        inner = [
            [[_keep(w, published, full) for w in block] for block in stage]
            for stage, published, full in zip(large.config["inner_widths"], stage_widths, _RESNET50_PLANES)
        ]
        return large.replace_config(inner_widths=inner)

    return make


def _mask(hex_digits: str) -> list[int]:
    bits = "".join(f"{int(digit, 16):04b}" for digit in hex_digits)
    return [channel for channel, bit in enumerate(bits) if bit == "1"]


def resnet50_2x_blocks() -> list[dict[str, Any]]:
    """Per bottleneck: stream width ``in``, conv1/conv2 widths and the selected stream channels of ResNet-50-2x."""
    data = json.loads(resources.files("rethink.pruning").joinpath("data/resnet50_2x.json").read_text())
    return [{**block, "selected": _mask(block.pop("selected_hex"))} for block in data["blocks"]]


def _resnet50_2x(large: ArchSpec) -> ArchSpec:
    """He et al.'s ResNet-50-2x: per block a selection of the stream before conv1 and thinner conv1 / conv2."""
    blocks = iter(resnet50_2x_blocks())
    config = with_input_selection(large).config
    inner, selected = [], []
    for stage_inner, stage_selected, full in zip(config["inner_widths"], config["selected"], _RESNET50_PLANES):
        inner.append([]), selected.append([])
        for (conv1, conv2), stream in zip(stage_inner, stage_selected):
            block = next(blocks)
            inner[-1].append([_keep(conv1, block["conv1"], full), _keep(conv2, block["conv2"], full)])
            full_width = len(stream) == block["in"]
            kept = (
                block["selected"] if full_width else stream[: _keep(len(stream), len(block["selected"]), block["in"])]
            )
            selected[-1].append(kept)
    return large.replace_config(inner_widths=inner, selected=selected)


THINET: dict[str, Target] = {
    "vgg_conv": Target(
        "vgg16_imagenet", _vgg([32, 32, M, 64, 64, M, 128, 128, 128, M, 256, 256, 256, M, *[512] * 3, M])
    ),
    "vgg_gap": Target(
        "vgg16_imagenet",
        _vgg([32, 32, M, 64, 64, M, 128, 128, 128, M, 256, 256, 256, M, *[512] * 3], "gap"),
        finish=_gap_head,
    ),
    "vgg_tiny": Target(
        "vgg16_imagenet",
        _vgg([16, 16, M, 32, 32, M, 64, 64, 64, M, 128, 128, 128, M, 128, 128, 256], "gap"),
        finish=_gap_head,
    ),
    "resnet50_30": Target("resnet50", _thinet_resnet((19, 38, 76, 153))),
    "resnet50_50": Target("resnet50", _thinet_resnet((32, 64, 128, 256))),
    "resnet50_70": Target("resnet50", _thinet_resnet((44, 89, 179, 358))),
}
REGRESSION: dict[str, Target] = {
    "vgg16_5x": Target(
        "vgg16_imagenet", _vgg([24, 22, M, 41, 51, M, 108, 89, 111, M, 184, 276, 228, M, *[512] * 3, M])
    ),
    "resnet50_2x": Target(
        "resnet50",
        _resnet50_2x,
        ("Scratch-B: the original README gives 132 epochs for ResNet-50-2x; its code, and this one, compute 134",),
        with_input_selection,
    ),
}
