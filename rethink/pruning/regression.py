"""Regression-based channel pruning (He et al., 2017, "channel pruning"; docs/protocol.md#regression),
``pruner=regression``: layer by layer, with the network pruned so far as input and the *original* network's output as
target, the kept input channels of the next layer are chosen by LASSO (the regularisation path, stopped where the
target count of channels is non-zero) and its weights rebuilt by linear least squares on them. Targets: the published
VGG-16-5x and ResNet-50-2x (which also selects each bottleneck's stream input), an L1-norm variant's widths, L1
ratios, or ``ratio``.

The LASSO path is scikit-learn's LARS-lasso (``lars_path``): a well-kept, exact path solver, so the point with the
target count of non-zero coefficients is found without a search over lambda.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from sklearn.linear_model import lars_path
from torch import Tensor

from rethink.arch.spec import ArchSpec
from rethink.arch.surgery import residual_declaration
from rethink.errors import UserError
from rethink.pruning.layerwise import LayerwisePruner, LayerwiseSettings
from rethink.pruning.published_targets import REGRESSION
from rethink.pruning.reconstruction import Rebuilt, relative_error
from rethink.pruning.registry import register
from rethink.pruning.sampling import Branch, Samples
from rethink.settings.typed import PositiveInt


def lasso_keep(
    contributions: Tensor, target: Tensor, keep: int, max_steps: int | None = None
) -> tuple[list[int], float, int]:
    """The ``keep`` channels (columns of ``contributions``) LASSO selects to explain ``target``, the lambda where it
    does, and how many were added without LASSO: the last point of the path with at most ``keep`` non-zero
    coefficients, completed from the next point (largest coefficients) where the path steps over ``keep``. Where the
    path reaches lambda ~ 0 with fewer (the other channels explain nothing more: dead or collinear ones), the largest
    remaining columns complete it; ValueError where it stops short of that (``max_steps``, default 4 per channel).
    Lambda is that of the problem scaled to unit-variance columns and target: one scale each, which leaves the
    selection unchanged and keeps lambda clear of the solver's absolute tolerance (float32 eps)."""
    steps = max_steps or 4 * contributions.shape[1]
    scaled = [(v / v.std() if float(v.std()) > 0 else v).numpy() for v in (contributions, target)]
    alphas, _, coefs = lars_path(*scaled, method="lasso", max_iter=steps)
    counts = (coefs != 0).sum(0)
    at = max(i for i in range(len(alphas)) if counts[i] <= keep)
    chosen = [int(c) for c in coefs[:, at].nonzero()[0]]
    filled = 0
    if len(chosen) < keep:
        if at + 1 < len(alphas):
            order = torch.from_numpy(abs(coefs[:, at + 1]))
        elif alphas[-1] <= 1e-6 * alphas[0]:
            order, filled = contributions.norm(dim=0), keep - len(chosen)
        else:
            raise ValueError(
                f"LASSO keeps at most {len(chosen)} channels, not the target {keep}: its path stopped after {steps} "
                f"steps at lambda {alphas[-1]:.3g} (from {alphas[0]:.3g})"
            )
        order[chosen] = -1
        chosen += [int(c) for c in order.argsort(descending=True)[: keep - len(chosen)]]
    return sorted(chosen), float(alphas[at]), filled


@dataclass(frozen=True)
class RegressionSettings(LayerwiseSettings):
    """Regression pruning: a target, how each layer is sampled, how many (position, output channel) rows the LASSO
    sees per layer, and ``multi_branch``: on ResNets, the target of a block's last conv also carries the shortcut's
    error (He et al.'s multi-branch enhancement; on in the ResNet-50-2x row)."""

    name: str = "regression"
    lasso_rows: PositiveInt = 20000
    multi_branch: bool = False
    revision: ClassVar[int] = 1  # 1: the rebuild refits the bias (an intercept), as He et al.'s code


def least_squares(inputs: Tensor, targets: Tensor, intercept: bool) -> tuple[Tensor, Tensor | None]:
    """The least-squares weights (columns, outputs) of ``inputs @ w (+ b) = targets``, and the intercept ``b``
    (outputs,) when fitted."""
    if not intercept:
        return torch.linalg.lstsq(inputs, targets).solution, None
    ones = torch.ones(len(inputs), 1, dtype=inputs.dtype)
    solution = torch.linalg.lstsq(torch.cat([inputs, ones], 1), targets).solution
    return solution[:-1], solution[-1]


@register
class Regression(LayerwisePruner):
    """LASSO channel selection and least-squares reconstruction of the original network's next-layer outputs."""

    name = "regression"
    title = "Regression-based feature reconstruction (He et al., 2017)"
    table_order = 12
    settings_type = RegressionSettings
    published = REGRESSION
    to_original = True

    def check(self, large: ArchSpec) -> None:
        super().check(large)
        self.branches(large)  # multi_branch: a clear error for a model without residual blocks

    def requested(self) -> dict[str, Any]:
        s = self.settings
        return {**super().requested(), "lasso_rows": s.lasso_rows, "multi_branch": s.multi_branch}

    def procedure(self) -> str | None:
        s = self.settings
        branch = "on" if s.multi_branch else "off"
        return f"{super().procedure()}; LASSO on {s.lasso_rows:,} rows; multi-branch target {branch}"

    def branches(self, spec: ArchSpec) -> dict[str, Branch]:
        """With ``multi_branch``: every block's last conv (``conv<N>`` before ``bn<N>``, its last BN)."""
        if not self.settings.multi_branch:
            return {}
        blocks = residual_declaration(spec, "pruner.multi_branch=true").blocks(spec)
        ending = next((b for stage in blocks for b in stage if b.has_branch and b.last_layer is not None), None)
        if ending is not None:
            raise ValueError(
                f"pruner.multi_branch=true maps the shortcut's error back through each block's last BN, but block "
                f"'{ending.path}' of family '{spec.family}' ends its branch in '{ending.last_layer}' after "
                f"'{ending.last_bn}' (a pre-activation block); use a post-activation ResNet (e.g. model=resnet50) "
                "or pruner.multi_branch=false"
            )
        return {
            f"{block.path}.conv{block.last_bn.removeprefix('bn')}": Branch(block.path, block.last_bn)
            for stage in blocks
            for block in stage
            if block.has_branch
        }

    def select(self, samples: Samples, keep: int, generator: torch.Generator) -> Rebuilt:
        patches, weight, targets = samples.patches, samples.weight, samples.targets
        count, _, taps = patches.shape
        outputs = weight.shape[0]
        rows = torch.randperm(count * outputs, generator=generator)[: self.settings.lasso_rows]
        if len(rows) < patches.shape[1]:
            raise UserError(
                f"pruner=regression: the LASSO sees {len(rows)} (position, output) rows for {patches.shape[1]} "
                "channels, too few to tell them apart; raise pruner.lasso_rows, pruner.samples or calibration.batches."
            )
        at, out = rows // outputs, rows % outputs
        contributions = (patches[at] * weight[out]).sum(-1)
        try:
            kept, lam, filled = lasso_keep(contributions, targets[at, out], keep)
        except ValueError as exc:
            raise UserError(f"pruner=regression: {exc}; raise calibration.batches or pruner.samples.") from None
        inputs = patches[:, kept].reshape(count, keep * taps)
        bias = samples.bias
        full = targets if bias is None else targets + bias  # the original output, its bias included
        rebuilt, intercept = least_squares(inputs, full, intercept=bias is not None)
        new = weight.clone()
        new[:, kept] = rebuilt.T.reshape(outputs, keep, taps)
        estimate = inputs @ rebuilt + (0.0 if intercept is None else intercept)
        notes = {
            "lambda": lam,
            "filled": filled,
            "samples": count,
            "bias_refit": intercept is not None,
            "error_kept": round(
                relative_error(targets, torch.einsum("sct,oct->so", patches[:, kept], weight[:, kept])), 6
            ),
            "error_rebuilt": round(relative_error(full, estimate), 6),
        }
        return Rebuilt(kept, new, intercept, notes)
