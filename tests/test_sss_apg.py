"""Sparse Structure Selection's sparsity training (docs/protocol.md#sss): the APG of the SSS paper against a direct
implementation of its update equations, the factors' clamp and exemption from weight decay, proximal SGD as before,
the optimizer in the stage key and the plan."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_settings
from torch.utils.data import DataLoader, TensorDataset

from rethink.arch import ArchSpec, build, default_spec
from rethink.errors import UserError
from rethink.pipeline import keys
from rethink.pipeline.plan import build_plan
from rethink.pruning.sss_training import SSSAPG, SSSPenalty, branch_scales
from rethink.training.module import ClassificationModule
from rethink.training.recipes import Recipe

SPEC = default_spec("resnet56", 10, width_multiplier=0.25, branch_scale=True).replace_config(
    blocks=[2, 2, 2], inner=[4, 4, 8, 8, 16, 16]
)
# the toy loss sum_i a_i / 2 (lambda_i - c_i)^2 over the six factors, and their starting values: factors pulled
# below zero (clamped), to near zero (thresholded away), and to well above it
CURVATURE = [1.0, 2.0, 0.5, 4.0, 1.5, 3.0]
CENTRE = [1.5, -0.5, 0.02, 0.8, -2.0, 0.3]
START = [1.0, 0.4, 0.6, 0.05, 1.2, 2.0]


class _Quadratic(ClassificationModule):
    """The real module (its optimizer and LR schedule) with a loss on the factors alone (or ``scale`` times it)."""

    def __init__(self, recipe: Recipe, scale: float = 1.0) -> None:
        super().__init__(SPEC, recipe)
        self.loss_scale = scale

    def on_fit_start(self) -> None:  # after the trainer made the model float64
        with torch.no_grad():
            for factor, value in zip(branch_scales(self.model).values(), START):
                factor.fill_(value)

    def factors(self) -> list[float]:
        return [float(f.detach()) for f in branch_scales(self.model).values()]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        factors = list(branch_scales(self.model).values())
        loss = sum(a / 2 * (f - c) ** 2 for f, a, c in zip(factors, CURVATURE, CENTRE))
        conv = self.model.conv1.weight.sum()  # in the graph, so SGD (and its weight decay) updates it
        return self.loss_scale * (loss + 0 * conv)

    def on_train_epoch_end(self) -> None:
        pass


class _Trajectory(pl.Callback):
    """The factors after every optimizer step, with the lr the step used."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, list[float]]] = []
        self._lr: float | None = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:  # noqa: ANN001
        self._lr = optimizer.param_groups[-1]["lr"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self._lr is not None:
            self.steps.append((self._lr, pl_module.factors()))
            self._lr = None


def _recipe(epochs: int, momentum: float, weight_decay: float, milestones: list[int]) -> Recipe:
    return Recipe(epochs, 0.1, milestones, 0.1, momentum, weight_decay, nesterov=momentum > 0)


def _fit(module: _Quadratic, callback: pl.Callback, batches: int, accumulate: int = 1) -> _Trajectory:
    """Trained in float64, so the comparisons measure the update rule, not float32 rounding (which drifts by ~1e-5
    over these steps where tiny late-schedule updates fall below a float32 ulp)."""
    trajectory = _Trajectory()
    data = TensorDataset(torch.zeros(batches, 1), torch.zeros(batches, dtype=torch.long))
    pl.Trainer(
        accelerator="cpu",
        max_epochs=module.recipe.epochs,
        accumulate_grad_batches=accumulate,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback, trajectory],
    ).fit(module, DataLoader(data, batch_size=1))
    return trajectory


def _soft(x: float, a: float) -> float:
    return math.copysign(max(abs(x) - a, 0.0), x)


def _paper_apg(lrs: list[float], mu: float, gamma: float) -> list[list[float]]:
    """The SSS paper's final update equations, per factor, in float64: z_t = lam'_{t-1} - eta_t grad G(lam'_{t-1});
    v_t = S(z_t) - lam'_{t-1} + mu v_{t-1}; lam'_t = S(z_t) + mu v_t (S: soft-threshold by eta_t gamma), then the
    code's clamp lam'_t >= 0."""
    lam, v, out = list(START), [0.0] * len(START), []
    for eta in lrs:
        for i, (a, c) in enumerate(zip(CURVATURE, CENTRE)):
            z = lam[i] - eta * a * (lam[i] - c)
            shrunk = _soft(z, eta * gamma)
            v[i] = shrunk - lam[i] + mu * v[i]
            lam[i] = max(shrunk + mu * v[i], 0.0)
        out.append(list(lam))
    return out


@pytest.mark.parametrize("accumulate", [1, 2])
def test_apg_follows_the_papers_equations_through_lr_drops(accumulate: int) -> None:
    gamma, epochs, batches = 0.05, 8, 10
    module = _Quadratic(_recipe(epochs, 0.9, 1e-4, [3, 5, 7]))
    trajectory = _fit(module, SSSAPG(gamma), batches, accumulate)
    steps = epochs * batches // accumulate
    lrs = [lr for lr, _ in trajectory.steps]
    assert len(lrs) == steps and sorted(set(lrs), reverse=True) == pytest.approx([0.1, 0.01, 1e-3, 1e-4])
    expected = _paper_apg(lrs, 0.9, gamma)
    deviation = max(abs(g - e) for (_, got), want in zip(trajectory.steps, expected) for g, e in zip(got, want))
    assert deviation < 1e-12
    final = module.factors()
    assert min(f for _, factors in trajectory.steps for f in factors) >= 0.0  # clamped: never negative
    assert final[1] == 0.0 and final[4] == 0.0  # pulled below zero: held at exactly zero
    assert final[2] == 0.0  # centre 0.02 < gamma / a: thresholded away
    assert final[0] > 1.0 and final[5] > 0.0


def test_apg_factors_get_no_weight_decay_but_the_other_weights_do() -> None:
    """Zero loss gradient, weight decay 5 at lr 0.1, no momentum: SGD would halve every factor each step; they move by
    exactly the threshold lr * gamma, while a conv weight is halved."""
    gamma, batches = 0.01, 5
    module = _Quadratic(_recipe(1, 0.0, 5.0, []), scale=0.0)
    conv = module.model.conv1.weight.detach().clone()
    trajectory = _fit(module, SSSAPG(gamma), batches)
    optimizer = module.trainer.optimizers[0]
    factors = {id(f) for f in branch_scales(module.model).values()}
    (decayed, own) = [(g["weight_decay"], {id(p) for p in g["params"]}) for g in optimizer.param_groups]
    assert decayed[0] == 5.0 and not decayed[1] & factors and len(decayed[1]) == len(list(module.parameters())) - 6
    assert own == (0.0, factors)
    for step, (_, factors) in enumerate(trajectory.steps, start=1):
        assert factors == pytest.approx([max(s - step * 0.1 * gamma, 0.0) for s in START], abs=1e-12)
    torch.testing.assert_close(module.model.conv1.weight.detach(), conv.double() * 0.5**batches)


def _torch_sgd_then_threshold(lrs: list[float], mu: float, wd: float, gamma: float) -> list[list[float]]:
    """The earlier behaviour written out: torch's Nesterov SGD with weight decay, then a soft-threshold by lr*gamma."""
    lam, buf, out = list(START), [None] * len(START), []
    for eta in lrs:
        for i, (a, c) in enumerate(zip(CURVATURE, CENTRE)):
            g = a * (lam[i] - c) + wd * lam[i]
            buf[i] = g if buf[i] is None else mu * buf[i] + g
            lam[i] = _soft(lam[i] - eta * (g + mu * buf[i]), eta * gamma)
        out.append(list(lam))
    return out


def test_proximal_sgd_is_the_earlier_behaviour() -> None:
    gamma, epochs, batches = 0.05, 4, 10
    module = _Quadratic(_recipe(epochs, 0.9, 0.05, [2, 3]))
    trajectory = _fit(module, SSSPenalty(gamma), batches)
    assert len(module.trainer.optimizers[0].param_groups) == 1  # weight decay on every parameter, as before
    expected = _torch_sgd_then_threshold([lr for lr, _ in trajectory.steps], 0.9, 0.05, gamma)
    for (_, got), want in zip(trajectory.steps, expected):
        assert got == pytest.approx(want, abs=1e-12)
    assert min(f for _, factors in trajectory.steps for f in factors) < 0  # no clamp: factors may go negative


def test_apg_refuses_a_weight_decayed_factor() -> None:
    class Plain(pl.LightningModule):
        def __init__(self, spec: ArchSpec) -> None:
            super().__init__()
            self.model = build(spec)

        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            return sum(branch_scales(self.model).values())

        def configure_optimizers(self):  # noqa: ANN201
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    data = TensorDataset(torch.zeros(2, 1), torch.zeros(2))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[SSSAPG(0.01)])  # fmt: skip
    with pytest.raises(ValueError, match="group with weight decay"):
        trainer.fit(Plain(SPEC), DataLoader(data, batch_size=1))


# ------------------------------------------------------------------------------------------- settings, key, plan

AUTOMATIC = ("dataset=cifar10", "model=resnet56", "pruner=sss", "schedule=finetune")


@pytest.mark.parametrize("optimizer, callback", [("apg", SSSAPG), ("proximal_sgd", SSSPenalty)])
def test_the_optimizer_picks_the_callback_and_enters_key_and_plan(optimizer: str, callback: type) -> None:
    plan = build_plan(compose_settings(*AUTOMATIC, f"pruner.optimizer={optimizer}"))
    assert [type(c) for c in plan.pruner.pretrain_callbacks(plan.large)] == [callback]
    assert plan.pruner.regularizer(plan.large) == {"sss_gamma": 0.01, "sss_optimizer": optimizer}
    assert plan.to_dict()["pruning"]["requested"]["optimizer"] == optimizer


def test_apg_and_proximal_sgd_never_share_a_stage() -> None:
    apg, proximal = (build_plan(compose_settings(*AUTOMATIC, f"pruner.optimizer={o}")) for o in ("apg", "proximal_sgd"))
    assert keys.pretrain_key(apg) != keys.pretrain_key(proximal)
    assert apg.settings.pruner.optimizer == "apg"  # the default


def test_unknown_optimizer_names_the_accepted_ones() -> None:
    with pytest.raises(UserError, match=r"pruner.optimizer='adam'.*accepted: apg, proximal_sgd"):
        build_plan(compose_settings(*AUTOMATIC, "pruner.optimizer=adam"))
