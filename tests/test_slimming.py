"""Network slimming: BN sparsity gradients, the global BN threshold, and the uniform control (paper-spec §2.1, §5.4)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rethink.arch import ArchSpec, build, default_spec
from rethink.arch.surgery import group_widths, mask, prunable_groups, shrink, with_group_widths
from rethink.pruning.slimming import (
    BNSparsity,
    add_bn_sparsity_grad,
    bn_scores,
    global_threshold_keep,
    slimming_bn_paths,
)
from rethink.pruning.uniform import uniform_keep_widths, uniform_target

BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _small_vgg() -> tuple[ArchSpec, nn.Module]:
    spec = default_spec("vgg19", 10, head="linear", width_multiplier=0.125)
    return spec, build(spec)


def _plant(model: nn.Module, seed: int) -> nn.Module:
    """Distinct |gamma| over the whole network (a random permutation of 1..N, scaled), random signs, and
    non-trivial BN statistics / biases so that masked channels matter."""
    generator = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, BN)]
    total = sum(m.num_features for m in bns)
    magnitudes = (torch.randperm(total, generator=generator) + 1).float() / total
    signs = torch.where(torch.rand(total, generator=generator) < 0.3, -1.0, 1.0)
    start = 0
    with torch.no_grad():
        for module in bns:
            n = module.num_features
            module.weight.copy_(magnitudes[start : start + n] * signs[start : start + n])
            module.bias.normal_(0.0, 0.1, generator=generator)
            module.running_mean.normal_(0.0, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            start += n
    return model.eval()


def _expected_vgg_keep(model: nn.Module, ratio: float) -> dict[str, list[int]]:
    """The reference prune script, written independently: every BN of the net, producer = the conv before it."""
    modules = list(model.named_modules())
    pairs = [(modules[i - 1][0], m) for i, (_, m) in enumerate(modules) if isinstance(m, BN)]
    pool = sorted(abs(g) for _, bn in pairs for g in bn.weight.tolist())
    threshold = pool[int(len(pool) * ratio)]
    return {conv: [i for i, g in enumerate(bn.weight.tolist()) if abs(g) > threshold] for conv, bn in pairs}


def _output(model: nn.Module, size: int, batch: int = 2) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x)


def _assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * max(scale, 1e-3))


# ------------------------------------------------------------------------------------------------- global threshold


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5])
def test_global_threshold_keeps_planted_channels(ratio: float) -> None:
    spec, model = _small_vgg()
    _plant(model, seed=0)
    expected = _expected_vgg_keep(model, ratio)
    assert all(expected.values()), "planting must not empty a layer here"
    keep = global_threshold_keep(model, spec, ratio)
    assert keep == expected
    total = sum(group_widths(spec).values())
    # Distinct values: exactly int(total * ratio) + 1 channels lie at or below the threshold (ratio 0 drops one).
    assert total - sum(map(len, keep.values())) == int(total * ratio) + 1
    pruned_spec, pruned = shrink(model, spec, keep)
    assert group_widths(pruned_spec) == {name: len(kept) for name, kept in keep.items()}
    _assert_same(_output(pruned, 32), _output(mask(model, spec, keep), 32))


def test_bn_scores_are_abs_gamma_per_group() -> None:
    spec, model = _small_vgg()
    _plant(model, seed=1)
    scores = bn_scores(model, spec)
    assert list(scores) == [g.name for g in prunable_groups(spec)]
    assert torch.equal(scores["features.3"], model.features[4].weight.detach().abs())


def _collapse(model: nn.Module, bn: str) -> None:
    """Make every |gamma| of ``bn`` smaller than any other channel's (distinct values, index 2 the largest)."""
    with torch.no_grad():
        weight = model.get_submodule(bn).weight
        weight.copy_(torch.linspace(1e-6, 1e-5, weight.numel()).roll(3) * -1)  # negative: |.| is used


def test_layer_collapse_keep_min_and_error() -> None:
    spec, model = _small_vgg()
    _plant(model, seed=2)
    _collapse(model, "features.4")  # BN of group features.3 (8 channels)
    largest = torch.linspace(1e-6, 1e-5, 8).roll(3).argsort(descending=True).tolist()

    keep = global_threshold_keep(model, spec, 0.5)
    assert keep["features.3"] == [largest[0]]
    keep2 = global_threshold_keep(model, spec, 0.5, min_channels=3)
    assert keep2["features.3"] == sorted(largest[:3])
    # Other groups are untouched by the rule unless they too fall short.
    for name, kept in keep.items():
        if name != "features.3" and len(kept) >= 3:
            assert keep2[name] == kept
    # min_channels wider than a group keeps the whole group.
    keep_all = global_threshold_keep(model, spec, 0.5, min_channels=100)
    assert keep_all == {g.name: list(range(g.width)) for g in prunable_groups(spec)}

    with pytest.raises(ValueError, match=r"features\.3 \(0 of 8\).*ratio is too high") as error:
        global_threshold_keep(model, spec, 0.5, on_empty="error")
    assert "collapse" in str(error.value)
    # With a low ratio nothing collapses and "error" passes.
    low = global_threshold_keep(model, spec, 0.0, on_empty="error")
    assert sum(map(len, low.values())) == sum(group_widths(spec).values()) - 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 1.0}, r"\[0, 1\)"),
        ({"ratio": 1.5}, r"\[0, 1\)"),
        ({"ratio": -0.1}, r"\[0, 1\)"),
        ({"ratio": float("nan")}, r"\[0, 1\)"),
        ({"ratio": True}, r"\[0, 1\)"),
        ({"ratio": 0.5, "min_channels": 0}, "min_channels"),
        ({"ratio": 0.5, "on_empty": "drop"}, "keep_min, error"),
    ],
)
def test_threshold_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    spec, model = _small_vgg()
    with pytest.raises(ValueError, match=message):
        global_threshold_keep(model, spec, **kwargs)


def test_model_without_bn_is_rejected() -> None:
    spec = default_spec("vgg16_imagenet", 10, width_multiplier=0.125)
    with pytest.raises(ValueError, match="sparsity penalty on a model without BN"):
        slimming_bn_paths(spec)
    with pytest.raises(ValueError, match="without BN"):
        global_threshold_keep(build(spec), spec, 0.5)
    with pytest.raises(ValueError, match="without BN"):
        uniform_keep_widths(spec, 10)


def test_pool_sizes_match_the_reference() -> None:
    """Total BN channels in the threshold pool (paper-spec §5.4, §4.7)."""
    for name, options, total in [
        ("vgg19", {"head": "linear"}, 5504),
        ("preresnet164", {}, 12112),
        ("densenet40", {}, 9360),
        ("vgg11_bn", {}, 10944),
    ]:
        spec = default_spec(name, 10, **options)
        groups = {g.name: g for g in prunable_groups(spec)}
        assert sum(groups[n].width for n in _pool_names(spec)) == total, name
        paths = slimming_bn_paths(spec)
        assert len(paths) == len(set(paths)) == len(_pool_names(spec))


def _pool_names(spec: ArchSpec) -> list[str]:
    return [g.name for g in prunable_groups(spec) if g.bn is not None]


# ---------------------------------------------------------------------------------------- channel-selection nets


@pytest.mark.parametrize("name", ["preresnet164", "densenet40"])
def test_selection_nets_threshold_mask_equals_shrink(name: str) -> None:
    torch.manual_seed(0)
    spec = default_spec(name, 10, width_multiplier=0.25)
    model = _plant(build(spec), seed=3)
    # Every BN of the network is in the pool.
    assert {g.bn for g in prunable_groups(spec)} == {n for n, m in model.named_modules() if isinstance(m, BN)}
    keep = global_threshold_keep(model, spec, 0.4)
    assert all(keep.values())
    pruned_spec, pruned = shrink(model, spec, keep)
    _assert_same(_output(pruned, 32), _output(mask(model, spec, keep), 32))
    assert not torch.allclose(_output(pruned, 32), _output(model, 32), atol=1e-4)

    selections = [g for g in prunable_groups(spec) if g.kind == "selection"]
    assert selections
    for position, group in enumerate(selections):
        chosen = spec.config["selected"][position]
        assert pruned_spec.config["selected"][position] == [chosen[i] for i in keep[group.name]]
        assert pruned.get_submodule(group.name).indices.tolist() == pruned_spec.config["selected"][position]
        gamma = model.get_submodule(str(group.bn)).weight.detach().abs()
        assert torch.equal(bn_scores(model, spec)[group.name], gamma[chosen])

    # Pruning again ranks only the still-selected BN entries (selection order) and composes with the first pruning.
    scores = bn_scores(pruned, pruned_spec)
    for position, group in enumerate(selections):
        selected = pruned_spec.config["selected"][position]
        full = pruned.get_submodule(str(group.bn)).weight.detach().abs()
        assert torch.equal(scores[group.name], full[selected])
    again = global_threshold_keep(pruned, pruned_spec, 0.3)
    twice_spec, twice = shrink(pruned, pruned_spec, again)
    composed = {g: [keep[g][i] for i in kept] for g, kept in again.items()}
    _assert_same(_output(twice, 32), _output(mask(model, spec, composed), 32))


def test_selection_mismatch_is_reported() -> None:
    spec = default_spec("densenet40", 10, width_multiplier=0.25)
    model = build(spec)
    model.select.indices = model.select.indices.flip(0)
    with pytest.raises(ValueError, match="'select'"):
        bn_scores(model, spec)


def test_imagenet_vgg11_prunes_bn1d_classifier() -> None:
    torch.manual_seed(0)
    spec = default_spec("vgg11_bn", 10, width_multiplier=0.125)
    model = _plant(build(spec), seed=4)
    paths = slimming_bn_paths(spec)
    assert {"classifier.1", "classifier.4"} <= set(paths)
    assert isinstance(model.get_submodule("classifier.1"), nn.BatchNorm1d)
    with torch.no_grad():  # the first FC layer's scales are small: the global threshold thins it most
        model.classifier[1].weight.mul_(0.2)
    keep = global_threshold_keep(model, spec, 0.5)
    widths = group_widths(spec)
    assert 0 < len(keep["classifier.0"]) < widths["classifier.0"]
    assert 0 < len(keep["classifier.3"]) < widths["classifier.3"]
    assert len(keep["classifier.0"]) < len(keep["classifier.3"])
    pruned_spec, pruned = shrink(model, spec, keep)
    assert pruned_spec.config["classifier"] == [len(keep["classifier.0"]), len(keep["classifier.3"])]
    assert pruned.classifier[1].num_features == len(keep["classifier.0"])
    _assert_same(_output(pruned, 224), _output(mask(model, spec, keep), 224))


# ------------------------------------------------------------------------------------------------ uniform control


@pytest.mark.parametrize(("name", "options"), [("vgg19", {"head": "linear"}), ("preresnet164", {}), ("densenet40", {})])
def test_uniform_control_same_total_same_fraction(name: str, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    spec = default_spec(name, 10, width_multiplier=0.25, **options)
    model = _plant(build(spec), seed=7)
    reference_spec, _ = shrink(model, spec, global_threshold_keep(model, spec, 0.6))
    uniform = uniform_target(spec, reference_spec)

    names = _pool_names(spec)
    full, reference, widths = group_widths(spec), group_widths(reference_spec), group_widths(uniform)
    total = sum(reference[n] for n in names)
    fraction = total / sum(full[n] for n in names)
    assert abs(sum(widths[n] for n in names) - total) <= len(names) / 2
    for n in names:
        assert widths[n] == max(1, int(full[n] * fraction + 0.5)), n
        assert abs(widths[n] / full[n] - fraction) <= 0.5 / full[n] + 1e-12 or widths[n] == 1, n
    assert widths != reference  # slimming's per-layer widths are not uniform
    assert uniform_keep_widths(spec, total) == {n: widths[n] for n in names}

    # Same spec as shrinking the first k channels; it builds, runs and round-trips through JSON.
    first_k = {n: list(range(widths[n])) for n in names}
    assert uniform == shrink(build(spec), spec, first_k)[0]
    assert uniform == with_group_widths(spec, {n: widths[n] for n in names})
    assert ArchSpec.from_json(uniform.to_json()) == uniform
    assert _output(build(uniform), 32).shape == (2, 10)


def test_uniform_argument_errors() -> None:
    spec, _ = _small_vgg()
    full = sum(group_widths(spec).values())
    for bad in (0, full + 1, 2.5, True):
        with pytest.raises(ValueError, match=rf"\[1, {full}\]"):
            uniform_keep_widths(spec, bad)  # type: ignore[arg-type]
    assert uniform_keep_widths(spec, full) == group_widths(spec)
    assert set(uniform_keep_widths(spec, 1).values()) == {1}  # at least one channel per group
    with pytest.raises(ValueError, match="family"):
        uniform_target(spec, default_spec("densenet40", 10, width_multiplier=0.25))
    with pytest.raises(ValueError, match="differ"):
        uniform_target(spec, default_spec("vgg16", 10, width_multiplier=0.125))
    with pytest.raises(ValueError, match="unknown channel group"):
        with_group_widths(spec, {"features.99": 1})
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        with_group_widths(spec, {"features.0": 9})


# ------------------------------------------------------------------------------------------------- sparsity grads


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["vgg19_mlp", "vgg19_bn"])
def test_sparsity_grad_only_on_bn_weights(name: str) -> None:
    torch.manual_seed(0)
    spec = (
        default_spec("vgg19", 10, head="mlp", width_multiplier=0.125)
        if name == "vgg19_mlp"
        else default_spec("vgg19_bn", 10, width_multiplier=0.125)
    )
    model = _plant(build(spec), seed=5).train()
    with torch.no_grad():
        model.features[1].weight[0] = 0.0  # sign(0) = 0: no penalty
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    F.cross_entropy(model(x), y).backward()
    before = _grads(model)
    paths = slimming_bn_paths(spec)
    bn_weights = {f"{p}.weight" for p in paths}
    assert bn_weights == {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, BN)}
    s = 1e-2
    add_bn_sparsity_grad(model, paths, s)
    after = _grads(model)
    params = dict(model.named_parameters())
    for key, grad in after.items():
        if key in bn_weights:
            assert torch.equal(grad, before[key] + s * torch.sign(params[key].detach())), key
            assert not torch.equal(grad, before[key])
        else:
            assert torch.equal(grad, before[key]), key
    assert after["features.1.weight"][0] == before["features.1.weight"][0]
    if name == "vgg19_mlp":
        assert "classifier.1.weight" in bn_weights  # BatchNorm1d


def test_sparsity_grad_errors() -> None:
    spec, model = _small_vgg()
    with pytest.raises(ValueError, match="not a BatchNorm"):
        add_bn_sparsity_grad(model, ["features.0"], 1e-4)
    with pytest.raises(ValueError, match="no module"):
        add_bn_sparsity_grad(model, ["features.999"], 1e-4)
    with pytest.raises(ValueError, match=">= 0"):
        add_bn_sparsity_grad(model, ["features.1"], -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        BNSparsity(float("nan"), ["features.1"])


class _Tiny(pl.LightningModule):
    """A minimal module around a built network (as ``self.model``), lr 0 so the weights stay put."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.model = build(spec)
        self.seen: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.model(images), labels)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:  # runs after the callbacks
        self.seen.append(_grads(self.model))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class _Spy(pl.Callback):
    """Records the gradients just before the callbacks after it run."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.seen.append(_grads(pl_module.model))


def test_callback_in_a_real_trainer() -> None:
    torch.manual_seed(0)
    spec = default_spec("vgg19", 10, head="mlp", width_multiplier=0.125)
    module = _Tiny(spec)
    _plant(module.model, seed=6).train()
    data = TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    spy, s = _Spy(), 1e-3
    paths = slimming_bn_paths(spec)
    # The spy runs before the sparsity callback, the module's own hook after it: their difference is the penalty.
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[spy, BNSparsity(s, paths)],
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    assert len(spy.seen) == len(module.seen) == 2
    params = dict(module.model.named_parameters())
    bn_weights = {f"{p}.weight" for p in paths}
    for raw, final in zip(spy.seen, module.seen):
        for key, grad in final.items():
            expected = raw[key] + s * torch.sign(params[key].detach()) if key in bn_weights else raw[key]
            assert torch.equal(grad, expected), key
        assert all(not torch.equal(final[key], raw[key]) for key in bn_weights)
