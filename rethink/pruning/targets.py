"""L1-norm filter pruning targets (Li et al., 2017; docs/protocol.md#l1): how many filters each prunable conv keeps.

Conv ids and stages follow the reference code; each family declares them (``Family.filter_numbering``): in a
basic-block ResNet the stem is conv 1 and block ``b`` (0-based over all stages) has conv1 = ``2 + 2b``; only branch
convs before the last one of a block are prunable (the last one writes the residual stream). VGGs: every conv from 1,
all prunable; a stage is a ResNet stage, or for VGGs the convs between two max-pools.

A rule gives a prune ratio ``p`` per stage or per prunable conv, plus conv ids to leave alone; a conv of width
``w`` keeps ``int(w * (1 - p))`` filters (floor, forgiving floating error). The predefined targets of the paper are
data (:data:`PREDEFINED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rethink.arch.registry import family_of
from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import group_widths, with_group_widths
from rethink.rounding import floor


@dataclass(frozen=True)
class PrunableConv:
    """A conv whose output filters L1 may prune."""

    conv_id: int  # id in the reference numbering (module docstring)
    stage: int  # 0-based
    module: str  # module path in the built model (= its channel group), e.g. "layer1.0.conv1" or "features.0"
    width: int


@dataclass(frozen=True)
class L1Rule:
    """Prune ratios per stage or per prunable conv (exactly one of the two), and conv ids left unpruned."""

    stage_ratios: tuple[float, ...] | None = None
    layer_ratios: tuple[float, ...] | None = None
    skip: tuple[int, ...] = ()


# Li et al.'s predefined targets, as in the reference prune scripts (docs/protocol.md#l1).
_RESNET34_SKIP = (2, 8, 14, 16, 26, 28, 30, 32)
PREDEFINED: dict[tuple[str, str], L1Rule] = {
    # conv1_1 and conv4_1..conv5_3 pruned by half: cfg [32, 64, M, 128, 128, M, 256 x3, M, 256 x3, M, 256 x3]
    ("vgg16", "A"): L1Rule(layer_ratios=(0.5,) + (0.0,) * 6 + (0.5,) * 6),
    ("resnet56", "A"): L1Rule(stage_ratios=(0.1, 0.1, 0.1), skip=(16, 20, 38, 54)),
    ("resnet56", "B"): L1Rule(stage_ratios=(0.6, 0.3, 0.1), skip=(16, 18, 20, 34, 38, 54)),
    ("resnet110", "A"): L1Rule(stage_ratios=(0.5, 0.0, 0.0), skip=(36,)),
    ("resnet110", "B"): L1Rule(stage_ratios=(0.5, 0.4, 0.3), skip=(36, 38, 74)),
    ("resnet34", "A"): L1Rule(stage_ratios=(0.3, 0.3, 0.3, 0.0), skip=_RESNET34_SKIP),
    ("resnet34", "B"): L1Rule(stage_ratios=(0.5, 0.6, 0.4, 0.0), skip=_RESNET34_SKIP),
}


def prunable_convs(spec: ArchSpec, model_name: str) -> list[PrunableConv]:
    """The prunable convs of ``spec`` in id order; ValueError when its family declares no numbering."""
    numbering = family_of(spec).filter_numbering
    if numbering is None:
        raise ValueError(
            f"model '{model_name}' (family '{spec.family}') declares no reference conv numbering "
            "(Family.filter_numbering), which L1-norm targets need"
        )
    widths = group_widths(spec)
    return [PrunableConv(c.conv_id, c.stage, c.group, widths[c.group]) for c in numbering(spec.config)]


# --------------------------------------------------------------------------------------------------------- rules


def predefined_rule(model_name: str, variant: str) -> L1Rule:
    """Li et al.'s rule for ``variant`` of ``model_name`` (e.g. resnet56 "B"); ValueError listing the accepted ones."""
    if (model_name, variant) in PREDEFINED:
        return PREDEFINED[(model_name, variant)]
    accepted = sorted(v for m, v in PREDEFINED if m == model_name)
    if accepted:
        raise ValueError(
            f"model '{model_name}' has no predefined L1-norm variant {variant!r}; accepted: {', '.join(accepted)}"
        )
    models = sorted({m for m, _ in PREDEFINED})
    known = "; ".join(f"{m} {', '.join(sorted(v for n, v in PREDEFINED if n == m))}" for m in models)
    raise ValueError(
        f"model '{model_name}' has no predefined L1-norm variants (these exist: {known}); give stage or layer "
        "ratios instead"
    )


def _target_choices(model_name: str) -> str:
    """The targets a model can be given: its predefined variants, or ratios of one's own (a clause, no full stop)."""
    ratios = "pruner.stage_ratios=[...] (one per stage) or pruner.layer_ratios=[...] (one per prunable conv)"
    variants = sorted(v for m, v in PREDEFINED if m == model_name)
    if variants:
        return f"Name one of its predefined variants, pruner.variant={' or '.join(variants)}, or give {ratios}"
    models = sorted({m for m, _ in PREDEFINED})
    known = "; ".join(f"{m} {', '.join(sorted(v for n, v in PREDEFINED if n == m))}" for m in models)
    return f"It has no predefined variant (these models have: {known}); give {ratios}"


def l1_rule(
    model_name: str,
    variant: str | None = None,
    stage_ratios: Sequence[float] | None = None,
    layer_ratios: Sequence[float] | None = None,
    skip: Sequence[int] | None = None,
) -> L1Rule:
    """The rule of a predefined ``variant``, or a user-defined one from exactly one kind of ratios plus ``skip``.

    An empty ``skip`` counts as not given, so a config with ``skip: []`` can name a variant.
    """
    if variant is not None:
        if stage_ratios is not None or layer_ratios is not None or skip:
            raise ValueError(
                f"L1-norm target for '{model_name}': give either variant {variant!r} or ratios/skip, not both"
            )
        return predefined_rule(model_name, variant)
    if stage_ratios is not None and layer_ratios is not None:
        raise ValueError(f"L1-norm target for '{model_name}': give exactly one of stage_ratios and layer_ratios")
    if stage_ratios is None and layer_ratios is None:
        raise ValueError(f"L1-norm target for '{model_name}': no target given. {_target_choices(model_name)}")
    return L1Rule(
        stage_ratios=None if stage_ratios is None else tuple(stage_ratios),
        layer_ratios=None if layer_ratios is None else tuple(layer_ratios),
        skip=tuple(skip or ()),
    )


def target_widths(spec: ArchSpec, model_name: str, rule: L1Rule) -> dict[int, int]:
    """Filters kept by every prunable conv of ``spec`` under ``rule``, keyed by conv id (unpruned ones included)."""
    convs = prunable_convs(spec, model_name)
    ratios = _conv_ratios(convs, model_name, rule)
    _check_skip(convs, model_name, rule.skip)
    widths = {}
    for conv, ratio in zip(convs, ratios):
        keep = conv.width if conv.conv_id in rule.skip else floor(conv.width * (1 - ratio))
        if keep < 1:
            raise ValueError(
                f"model '{model_name}': conv {conv.conv_id} ({conv.module}) would keep 0 of its {conv.width} filters "
                f"with prune ratio {ratio}; lower the ratio or skip that conv"
            )
        widths[conv.conv_id] = keep
    return widths


def _conv_ratios(convs: list[PrunableConv], model_name: str, rule: L1Rule) -> list[float]:
    """One prune ratio per prunable conv, from the rule's stage or layer ratios (checked)."""
    if (rule.stage_ratios is None) == (rule.layer_ratios is None):
        raise ValueError(f"L1-norm rule for '{model_name}' needs exactly one of stage_ratios and layer_ratios")
    kind, given = ("stage", rule.stage_ratios) if rule.stage_ratios is not None else ("layer", rule.layer_ratios)
    expected = max(c.stage for c in convs) + 1 if kind == "stage" else len(convs)
    unit = "stages" if kind == "stage" else "prunable convs"
    if len(given) != expected:
        raise ValueError(
            f"model '{model_name}' has {expected} {unit}, so it needs {expected} {kind} ratios, got {len(given)}: "
            f"{list(given)}"
        )
    for ratio in given:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise ValueError(f"prune ratio {ratio!r} for model '{model_name}' is invalid; accepted: numbers in [0, 1)")
    return [given[c.stage] for c in convs] if kind == "stage" else list(given)


def _check_skip(convs: list[PrunableConv], model_name: str, skip: Sequence[int]) -> None:
    ids = [c.conv_id for c in convs]
    bad = [s for s in skip if s not in ids]
    if bad:
        raise ValueError(
            f"skip id(s) {bad} of model '{model_name}' are not prunable conv ids; accepted: {_format_ids(ids)}"
        )


def _format_ids(ids: list[int]) -> str:
    """``2, 4, ..., 54`` for a long arithmetic progression, else every id."""
    steps = {b - a for a, b in zip(ids, ids[1:])}
    if len(ids) > 6 and len(steps) == 1:
        return f"{ids[0]}, {ids[1]}, ..., {ids[-1]}"
    return ", ".join(map(str, ids))


# ------------------------------------------------------------------------------------------------------ the spec


def with_widths(spec: ArchSpec, model_name: str, widths: dict[int, int]) -> ArchSpec:
    """``spec`` with the prunable convs named by id in ``widths`` set to those output widths."""
    by_group = {
        conv.module: widths[conv.conv_id] for conv in prunable_convs(spec, model_name) if conv.conv_id in widths
    }
    return with_group_widths(spec, by_group)


def l1_target_spec(
    spec: ArchSpec,
    model_name: str,
    variant: str | None = None,
    stage_ratios: Sequence[float] | None = None,
    layer_ratios: Sequence[float] | None = None,
    skip: Sequence[int] | None = None,
) -> ArchSpec:
    """The L1-norm pruned spec of unpruned ``spec``: a predefined ``variant`` or user ratios (see :func:`l1_rule`)."""
    prunable_convs(spec, model_name)  # the family declares the reference numbering
    rule = l1_rule(model_name, variant, stage_ratios, layer_ratios, skip)
    return with_widths(spec, model_name, target_widths(spec, model_name, rule))
