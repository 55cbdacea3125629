"""The per-sample terms of the adjacent-piece lower model (:mod:`multiconvex.nets.adjacent`), for each loss.

A sample's loss enters the lower model of a unit block through three numbers: the gradient ``∇ℓ(f_i)`` of the loss
at the sample's output (its one-sided slopes are ``∇ℓ(f_i)ᵀv_i^±/N``), a curvature that is valid *globally* along
the block (squared loss: its exact ``‖v_i‖²/N``; a general convex loss: 0), and, where a boundary entry sits within
the tolerance but not exactly on its kink, the constant ``E_i`` and the slope shrink ``κ_i`` of
:func:`off_kink_terms`.

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture
>>> f = torch.tensor([[0.0, 0.0]], dtype=torch.float64); t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
>>> loss_gradient(Architecture((2, 3, 2), "softmax"), f, t).tolist()  # softmax(f) − t
[[-0.5, 0.5]]
>>> keeps_curvature(Architecture((2, 3, 2), "softmax"))
False
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInputError
from ..rounding import gamma
from .network import LOSSES, Architecture, Params


def keeps_curvature(arch: Architecture) -> bool:
    """Whether the lower model keeps each sample's curvature along the block: squared loss only (``½‖f − y‖²`` is
    exactly quadratic in ``t``, with second derivative ``‖v‖²/N`` on every piece). A logistic or softmax loss is
    convex but its second derivative along a ray falls to 0 far out, so the only curvature valid for every step is
    0: its lower model is linear per sample, ``P = λI``."""
    return arch.loss == "squared"


def loss_gradient(arch: Architecture, out: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """``∇ℓ(f_i)`` per sample, ``(N, n_out)``, for the targets ``T`` encoded as
    :func:`multiconvex.nets.network.encode_targets` does (the loss of :func:`multiconvex.nets.network.data_loss`,
    without its ``1/N``).

    Squared: ``f − t``. Logistic (``Σ_o log(1 + e^{−t_o f_o})``, ``t_o = ±1``): ``−t_o σ(−t_o f_o)``. Softmax
    (``logsumexp(f) − tᵀf``, ``t`` one-hot): ``softmax(f) − t``.
    """
    if arch.loss == "squared":
        return out - T
    if arch.loss == "logistic":
        return -T * torch.sigmoid(-T * out)
    if arch.loss == "softmax":
        return torch.softmax(out, dim=1) - T
    raise InvalidInputError(f"loss_gradient: arch.loss={arch.loss!r}; use one of {LOSSES}")


def off_kink_terms(arch: Architecture, params: Params, pre: list[torch.Tensor], grad: torch.Tensor, k: int,
                   units: torch.Tensor, rows: torch.Tensor, tols: list[float], N: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (sample of ``rows``, unit of ``units``): the constant ``E`` and the slope shrink ``κ`` that make the
    lower model valid when boundary entries are within the tolerance but not exactly on their kink (``z ≠ 0``).

    On a piece ``σ`` the sample's output is ``f + δ_σ + v_σ t`` (``t`` the unit's own ``δz``), where ``δ_σ`` is the
    output of the piece's affine map at the point minus ``f``: each boundary entry that ``σ`` puts on its other side
    changes its activation by at most ``|1 − a|·|z|`` (``a`` the negative slope), carried to the output by at most
    ``‖W_{l+1}[:, j]‖ · Π_{m>l+1} s‖W_m‖₂`` (``s = max(1, |a|)``): ``‖δ_σ‖ ≤ D``, the sum over the sample's boundary
    entries with ``z ≠ 0`` (the unit's own and every later one, moved or not: an over-count is safe).

    * Squared loss (the model keeps the curvature ``‖v_σ‖²/N``): with ``‖a + δ‖² ≥ ‖a‖² − 2‖a‖‖δ‖`` and
      ``‖e + v_σ t‖ ≤ ‖e‖ + G|t|`` (``e = f − y``, ``G = ‖W_{k+1}[:, u]‖ · Π_{m>k+1} s‖W_m‖₂ ≥ ‖v_σ‖``), the
      exact-kink model less ``E + κ|t|``, ``E = ‖e‖D/N``, ``κ = GD/N``, is below the loss on every such piece.
    * A convex loss whose model is linear (:func:`keeps_curvature` False): by the gradient inequality at ``f``,
      ``ℓ(f + δ_σ + v_σ t) ≥ ℓ(f) + ∇ℓ(f)ᵀv_σ t − ‖∇ℓ(f)‖‖δ_σ‖``, so ``E = ‖∇ℓ(f)‖D/N`` and ``κ = 0``: the linear
      model's slope ``∇ℓ(f)ᵀv_σ/N`` needs no narrowing (no Lipschitz constant of ``∇ℓ`` enters).

    ``grad`` is :func:`loss_gradient` at the point (squared: ``e``). ``E`` adds to the bound and ``κ`` narrows each
    side's slope (``c⁺ − κ``, ``c⁻ + κ``). Both are 0 where every boundary entry is exactly on its kink. Both are
    rounded up by a relative ``γ_{8·Σ(n_in + n_out) + 32}``: the spectral norms' backward error (an SVD's, a small
    multiple of ``(n_in + n_out)·u``), the column norms' and the products' rounding."""
    s = max(1.0, abs(arch.negative_slope))
    jump = abs(1.0 - arch.negative_slope)
    L = arch.n_layers
    spec = [s * float(torch.linalg.matrix_norm(params[m][0], ord=2)) for m in range(L)]
    tail = [math.prod(spec[m:]) for m in range(L + 1)]  # tail[m] = Π_{m' ≥ m} s‖W_{m'}‖₂ (tail[L] = 1)
    out_w = [params[l + 1][0].norm(dim=0) * tail[l + 2] for l in range(L - 1)]  # per entry j of layer l: its gain
    D_later = torch.zeros(rows.numel(), dtype=grad.dtype, device=grad.device)
    for l in range(k + 1, L - 1):
        z = pre[l][rows].abs()
        off = (z <= tols[l]) & (z > 0)
        D_later += jump * (torch.where(off, z, torch.zeros_like(z)) * out_w[l][None, :]).sum(dim=1)
    z_own = pre[k][rows][:, units].abs()
    off_own = (z_own <= tols[k]) & (z_own > 0)
    D = jump * torch.where(off_own, z_own, torch.zeros_like(z_own)) * out_w[k][units][None, :] + D_later[:, None]
    up = 1.0 + gamma(8 * sum(sum(params[m][0].shape) for m in range(L)) + 32)
    E = grad[rows].norm(dim=1)[:, None] * D / N * up
    if not keeps_curvature(arch):
        return E, torch.zeros_like(E)
    G = params[k + 1][0][:, units].norm(dim=0) * tail[k + 2]
    return E, G[None, :] * D / N * up


__all__ = ["keeps_curvature", "loss_gradient", "off_kink_terms"]
