"""Sparse Structure Selection's sparsity training (docs/protocol.md#sss): the penalty ``gamma * sum |lambda_i|`` on
the residual-branch factors, applied by one of two Lightning callbacks (``pruner.optimizer``).

- :class:`SSSAPG` (``apg``): the modified stochastic accelerated proximal gradient of the SSS paper (Huang & Wang,
  2018, Sec. 3.3, its NAG-like final form) as TuSimple's ``core/optimizer.py`` (``APGNAG``) runs it. The stored factor
  is the look-ahead point ``lambda'``; with ``g`` the loss gradient there, ``eta`` the current lr of the factor's
  parameter group and ``mu`` its momentum (``optim.momentum``), every optimizer step does::

      z      = lambda' - eta * g
      v      = S(z, eta * gamma) - lambda' + mu * v
      lambda' = max(S(z, eta * gamma) + mu * v, 0)          S(x, a) = sign(x) * max(|x| - a, 0)

  No weight decay reaches the factors (``wd_mult=0`` there): the callback declares them to the LightningModule
  (``self_optimised_parameters``), which puts them in an SGD group of their own without weight decay, and takes
  their gradient before SGD steps, so SGD leaves them alone. ``v`` lives in the optimizer's state of the factor
  (checkpointed with it).
- :class:`SSSPenalty` (``proximal_sgd``, this package's earlier behaviour): SGD updates the factors like every
  parameter (momentum, weight decay), then each is soft-thresholded by ``lr * gamma``; factors may go negative.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

VELOCITY = "sss_apg_velocity"  # the optimizer-state entry holding v


def branch_scales(model: nn.Module) -> dict[str, nn.Parameter]:
    """Block path (e.g. ``layer2.0``) -> its branch factor: every module of ``model`` with a scalar parameter
    ``scale`` (how the residual families build a factor when ``branch_scale`` is on)."""
    return {
        name: module.scale
        for name, module in model.named_modules()
        if isinstance(getattr(module, "scale", None), nn.Parameter) and module.scale.numel() == 1
    }


def soft_threshold(value: torch.Tensor, amount: float) -> torch.Tensor:
    """``sign(value) * max(|value| - amount, 0)``: the proximal step of ``amount * |value|``."""
    return torch.sign(value) * torch.clamp(value.abs() - amount, min=0)


def soft_threshold_(param: torch.Tensor, amount: float) -> None:
    """In place: :func:`soft_threshold`."""
    with torch.no_grad():
        param.copy_(soft_threshold(param, amount))


def _check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"sss gamma must be a number >= 0, got {gamma!r}")
    return float(gamma)


class _FactorCallback(pl.Callback):
    """Finds the factors of ``pl_module.<network_attr>`` (the LightningModule itself when None)."""

    def __init__(self, gamma: float, network_attr: str | None = "model") -> None:
        super().__init__()
        self.gamma = _check_gamma(gamma)
        self.network_attr = network_attr

    def _scales(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        network: Any = pl_module if self.network_attr is None else getattr(pl_module, self.network_attr, None)
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"{type(self).__name__}: the LightningModule has no network attribute '{self.network_attr}'"
            )
        scales = branch_scales(network)
        if not scales:
            raise ValueError(
                f"{type(self).__name__}: the network has no residual-branch factors; build it with branch_scale: true "
                "(e.g. model option branch_scale=true, or rethink.pruning.sss.with_branch_scale)"
            )
        return scales

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._scales(pl_module)  # fail early


class SSSPenalty(_FactorCallback):
    """Proximal SGD: after every optimizer step, each factor is soft-thresholded by ``lr * gamma``, ``lr`` being the
    lr the step used for the parameter group holding it.

    The lrs are read in ``on_before_optimizer_step`` (after backward, inside the step: the lr the update uses, before
    any scheduler moves it) and the threshold is applied in ``on_train_batch_end``, after the update; so with
    gradient accumulation it runs once per optimizer step. A factor that is in no optimizer, or frozen, is left
    alone. Weight decay, if the optimizer applies it to the factors, adds on top.
    """

    def __init__(self, gamma: float, network_attr: str | None = "model") -> None:
        super().__init__(gamma, network_attr)
        self._step_lrs: dict[int, float] = {}  # id(param) -> lr of the optimizer step in progress

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._step_lrs = {}

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        for group in optimizer.param_groups:
            for param in group["params"]:
                self._step_lrs[id(param)] = float(group["lr"])

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        lrs, self._step_lrs = self._step_lrs, {}
        if not lrs:
            return  # no optimizer step this batch (gradient accumulation)
        for scale in self._scales(pl_module).values():
            if scale.requires_grad and id(scale) in lrs:
                soft_threshold_(scale, lrs[id(scale)] * self.gamma)


class SSSAPG(_FactorCallback):
    """The SSS paper's APG on the factors (module docstring), in place of SGD's update of them.

    Runs in ``on_before_optimizer_step`` (after backward and AMP unscaling, once per optimizer step with gradient
    accumulation): it updates each factor from its gradient, then clears the gradient so SGD (and gradient clipping)
    skip it. A step whose factor gradient is not finite (an AMP step the scaler skips) leaves the factor alone. The
    LightningModule must build its optimizer from :meth:`self_optimised_parameters` (``ClassificationModule`` does);
    a factor left in a weight-decayed group is refused.
    """

    def self_optimised_parameters(self, pl_module: pl.LightningModule) -> list[str]:
        """The factors' parameter names in ``pl_module``: the optimizer gives them a group without weight decay."""
        prefix = "" if self.network_attr is None else f"{self.network_attr}."
        return [f"{prefix}{path}.scale" for path in self._scales(pl_module)]

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        for path, scale in self._scales(pl_module).items():
            if id(scale) not in groups or scale.grad is None:
                continue  # frozen, or in no optimizer
            group, grad = groups[id(scale)], scale.grad
            scale.grad = None
            if group.get("weight_decay", 0.0) != 0.0:
                raise ValueError(
                    f"SSSAPG: the factor of {path} is in an optimizer group with weight decay; the LightningModule "
                    "must give self_optimised_parameters() a group without it"
                )
            if torch.isfinite(grad).all():
                apg_step_(scale, grad, optimizer.state[scale], float(group["lr"]), float(group["momentum"]), self.gamma)


def apg_step_(
    param: nn.Parameter, grad: torch.Tensor, state: dict[str, Any], lr: float, mu: float, gamma: float
) -> None:
    """One APG step of ``param`` (the look-ahead point) in place; ``state[VELOCITY]`` holds ``v`` (zero at first)."""
    with torch.no_grad():
        velocity = state.get(VELOCITY, torch.zeros_like(param))
        shrunk = soft_threshold(param - lr * grad, lr * gamma)
        velocity = shrunk - param + mu * velocity
        param.copy_(torch.clamp(shrunk + mu * velocity, min=0))
        state[VELOCITY] = velocity
