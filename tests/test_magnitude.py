"""Weight-level magnitude pruning: global vs per-layer masks on planted weights, the reference threshold rule,
iterative rounds, masks surviving real SGD training, sparse FLOPs, the sparse He re-init and masks.pt round trips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from rethink.arch import build, default_spec
from rethink.arch.cost import count_cost
from rethink.pruning.masks import (
    MaskKeeper,
    apply_masks,
    check_masks,
    conv_weight_paths,
    load_masks,
    magnitude_masks,
    save_masks,
    sparse_flops_ratio,
    sparse_he_init_,
    sparsity_report,
)


class _Net(nn.Module):
    """Two convs (one with a 1x1 shortcut-like conv), BN and a Linear head: the Linear and BN are never pruned."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU())
        self.shortcut = nn.Conv2d(8, 16, 1, bias=False)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.block(x) + self.shortcut(x)
        return self.fc(x.mean((2, 3)))


def _planted() -> _Net:
    """Distinct magnitudes per layer: stem |w| in [0, 1), block in [1, 2), shortcut in [2, 3) (random signs)."""
    model = _Net()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for offset, conv in enumerate([model.stem, model.block[0], model.shortcut]):
            magnitude = offset + torch.rand(conv.weight.shape, generator=g)
            conv.weight.copy_(magnitude * torch.sign(torch.randn(conv.weight.shape, generator=g)))
    return model


def _pruned_per_layer(masks: dict[str, torch.Tensor]) -> dict[str, int]:
    return {name: int((~mask).sum()) for name, mask in masks.items()}


def test_conv_paths_cover_every_conv_and_no_linear() -> None:
    assert conv_weight_paths(_Net()) == ["stem", "block.0", "shortcut"]
    model = build(default_spec("preresnet110", 10))
    paths = conv_weight_paths(model)
    assert sum(dict(model.named_modules())[p].weight.numel() for p in paths) == 1_128_112  # paper-spec §5.7


def test_global_scope_prunes_small_layers_first_and_layer_scope_is_uniform() -> None:
    model = _planted()
    sizes = {"stem": 216, "block.0": 1152, "shortcut": 128}
    total = sum(sizes.values())  # 1496
    # 10%: int(149.6) + 1 = 150 smallest weights, all in the stem (216 weights below 1.0).
    assert _pruned_per_layer(magnitude_masks(model, 0.1)) == {"stem": 150, "block.0": 0, "shortcut": 0}
    # 50%: the whole stem, then 748 + 1 - 216 = 533 of the block; the large shortcut untouched.
    assert _pruned_per_layer(magnitude_masks(model, 0.5)) == {"stem": 216, "block.0": 533, "shortcut": 0}
    for ratio in (0.1, 0.3, 0.5, 0.8):
        layer = magnitude_masks(model, ratio, scope="layer")
        assert _pruned_per_layer(layer) == {name: int(n * ratio) for name, n in sizes.items()}
        for name, conv in [("stem", model.stem), ("block.0", model.block[0]), ("shortcut", model.shortcut)]:
            kept, pruned = conv.weight.abs()[layer[name]], conv.weight.abs()[~layer[name]]
            assert kept.min() >= pruned.max()  # the smallest weights of each layer went
    report = sparsity_report(magnitude_masks(model, 0.5))
    assert report["total"]["total"] == total and report["total"]["kept"] == total - 749
    assert report["layers"]["stem"] == {"kept": 0, "total": 216, "density": 0.0, "sparsity": 1.0}
    assert report["layers"]["shortcut"]["density"] == 1.0


def test_global_threshold_is_the_reference_rule() -> None:
    torch.manual_seed(1)
    model = build(default_spec("resnet56", 10))
    ratio = 0.3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # cifar/weight-level/cifar_prune.py, verbatim in spirit: one sorted vector of all conv |w|.
    weights = torch.cat([m.weight.detach().abs().flatten() for m in convs])
    threshold = torch.sort(weights).values[int(weights.numel() * ratio)]
    expected = [m.weight.detach().abs() > threshold for m in convs]
    masks = magnitude_masks(model, ratio)
    assert list(masks) == conv_weight_paths(model)
    assert all(torch.equal(mask, exp) for mask, exp in zip(masks.values(), expected))
    assert all(mask.dtype == torch.bool and mask.device.type == "cpu" for mask in masks.values())
    assert sparsity_report(masks)["total"]["kept"] == weights.numel() - int(weights.numel() * ratio) - 1
    assert not any(name.startswith("fc") for name in masks)  # the Linear is never pruned


def test_iterative_rounds_prune_the_remaining_weights_and_never_revive() -> None:
    torch.manual_seed(2)
    model = build(default_spec("resnet56", 10))
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    first = magnitude_masks(model, 0.2)
    apply_masks(model, first)
    with torch.no_grad():  # "train": rescale the survivors so the second round's order differs from the first
        for p in model.parameters():
            p.mul_(torch.rand_like(p) * 2)
    second = magnitude_masks(model, 0.2, existing=first)
    zeros = total - sparsity_report(first)["total"]["kept"]
    nonzero = total - zeros
    # threshold index #zeros + int(#nonzero * 0.2): everything up to it is pruned
    assert sparsity_report(second)["total"]["kept"] == total - (zeros + int(nonzero * 0.2) + 1)
    assert sparsity_report(second)["total"]["density"] == pytest.approx(0.64, abs=1e-3)
    assert all(not (s & ~f).any() for s, f in zip(second.values(), first.values()))  # nothing revived
    # The pruned weights are not re-grown even when the model's weights there are nonzero again (reset to init).
    model.load_state_dict(init)
    third = magnitude_masks(model, 0.2, existing=second)
    assert all(not (t & ~s).any() for t, s in zip(third.values(), second.values()))
    assert sparsity_report(third)["total"]["density"] == pytest.approx(0.512, abs=1e-3)
    layered = magnitude_masks(model, 0.2, scope="layer", existing=first)
    for name, mask in layered.items():
        kept_before = int(first[name].sum())
        assert not (mask & ~first[name]).any() and int(mask.sum()) == kept_before - int(kept_before * 0.2)
    unchanged = magnitude_masks(model, 0.0, existing=second)  # ratio 0 prunes nothing more
    assert list(unchanged) == list(second) and all(torch.equal(unchanged[k], second[k]) for k in second)
    assert all(mask.all() for mask in magnitude_masks(model, 0.0).values())


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 4),
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


class _GradientProbe(pl.Callback):
    """Runs after MaskKeeper: at every optimizer step the pruned positions have zero gradient and zero weight."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks, self.steps = masks, 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        for name, mask in self.masks.items():
            weight = pl_module.model.get_submodule(name).weight
            assert torch.count_nonzero(weight.grad[~mask]) == 0 and torch.count_nonzero(weight[~mask]) == 0
            assert torch.count_nonzero(weight.grad[mask]) > 0
        self.steps += 1


def _fit(module: _Tiny, callbacks: list[pl.Callback]) -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8, shuffle=True))  # 32 optimizer steps


def test_mask_keeper_keeps_pruned_weights_exactly_zero_through_sgd_training() -> None:
    torch.manual_seed(0)
    module = _Tiny()
    masks = magnitude_masks(module.model, 0.6)
    before = {name: module.model.get_submodule(name).weight.detach().clone() for name in masks}  # not yet masked
    probe = _GradientProbe(masks)
    _fit(module, [MaskKeeper(masks), probe])
    assert probe.steps == 32
    for name, mask in masks.items():
        weight = module.model.get_submodule(name).weight.detach()
        assert torch.count_nonzero(weight[~mask]) == 0  # exactly zero, on_fit_start masked them too
        assert (weight[mask] != before[name][mask]).float().mean() > 0.99  # the kept ones trained
    assert sparsity_report(masks)["total"]["density"] < 0.41
    # Control: without the callback the same masked start does not stay sparse (momentum + weight decay + grads).
    control = _Tiny()
    apply_masks(control.model, masks)
    _fit(control, [])
    assert all(torch.count_nonzero(control.model.get_submodule(n).weight[~m]) > 0 for n, m in masks.items())


def test_sparse_flops_match_a_hand_count() -> None:
    dense = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    masked = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    masked.load_state_dict(dense.state_dict())
    mask = torch.ones(4, 3, 3, 3, dtype=torch.bool)
    mask.view(-1)[:40] = False  # 108 - 40 = 68 nonzero weights
    apply_masks(masked, {"0": mask})
    linear = 2 * 256 * 10 + 10
    dense_flops = (2 * 27 + 1) * 4 * 64 + linear
    sparse_flops = (2 * 68 + 4) * 64 + linear
    assert count_cost(masked, 8, sparse=True).flops == sparse_flops
    assert sparse_flops_ratio(dense, masked, 8) == pytest.approx(dense_flops / sparse_flops)
    assert sparse_flops_ratio(dense, dense, 8) == 1.0  # the reference's Scratch-B bug: unmasked reference


def test_sparse_he_init_matches_sqrt_2_over_n_and_keeps_zeros() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(64, 256, 3, bias=False), nn.Linear(5, 5))
    linear_before = model[1].weight.detach().clone()
    mask = torch.rand(256, 64, 3, 3) < 0.3
    sparse_he_init_(model, {"0": mask})
    weight = model[0].weight.detach()
    n = mask.sum().item() / 64  # = density * 3*3*256
    assert n == pytest.approx(0.3 * 9 * 256, rel=0.02)
    assert weight[mask].std().item() == pytest.approx(math.sqrt(2 / n), rel=0.02)
    assert abs(weight[mask].mean().item()) < 0.05 * math.sqrt(2 / n)
    assert torch.count_nonzero(weight[~mask]) == 0
    assert torch.equal(model[1].weight, linear_before)  # other layers untouched


def test_check_masks_names_the_offending_layer() -> None:
    model = _Net()
    good = magnitude_masks(_planted(), 0.3)
    check_masks(model, good)
    with pytest.raises(ValueError, match="'shortcut'"):
        check_masks(model, {k: v for k, v in good.items() if k != "shortcut"})
    with pytest.raises(ValueError, match="'fc'"):
        check_masks(model, {**good, "fc": torch.ones(4, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match="'block.0'.*shape"):
        check_masks(model, {**good, "block.0": torch.ones(16, 8, 1, 1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="'stem'.*bool"):
        check_masks(model, {**good, "stem": good["stem"].float()})
    with pytest.raises(ValueError, match="'stem'"):
        apply_masks(model, {k: v for k, v in good.items() if k != "stem"})
    with pytest.raises(ValueError, match="'shortcut'"):
        MaskKeeper({k: v for k, v in good.items() if k != "shortcut"}).on_fit_start(None, model)  # type: ignore[arg-type]
    for ratio in (-0.1, 1.0, 1.5, True):
        with pytest.raises(ValueError, match="ratio"):
            magnitude_masks(model, ratio)
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(model, 0.5, scope="filter")


def test_masks_round_trip_through_masks_pt_with_weights_only(tmp_path: Path) -> None:
    masks = magnitude_masks(_planted(), 0.4)
    path = tmp_path / "cell" / "masks.pt"
    save_masks(path, masks)
    save_masks(path, masks)  # overwriting is atomic and leaves no temp file behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["masks.pt"]
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == list(masks) and all(torch.equal(loaded[k], masks[k]) for k in masks)
    assert all(mask.dtype == torch.bool for mask in load_masks(path).values())
    with pytest.raises(ValueError, match="bool"):
        save_masks(tmp_path / "bad.pt", {"stem": masks["stem"].float()})
