"""Milne's diagnostics of piecewise strong convexity (THEORY §3).

* :func:`region_test` — is ``W`` in ``U(λ, θ) = {ℓ(W)^{1/2} ‖W‖_*^{H−1} < (λ − θ)/(√2 H(H+1) r)}``
  (Def 2, eq. 6)? Reports the largest θ (``θ_max = λ − √2 H(H+1) r ℓ^{1/2} ‖W‖_*^{H−1}``; the
  weights are in ``U(λ, θ)`` for every ``0 < θ < θ_max``, and in ``U(λ)`` iff ``θ_max > 0``) with
  ``r``, ``H``, ``‖W‖_*`` and ``ℓ``.
* :func:`lambda_threshold` — Lemma 4 / eq. 10: the weight decay above which every global minimiser
  of ``ℓ_λ`` lies in some ``U(λ, θ)``.
* :func:`normalised_curvature` — ``2∇ℓ_λᵀ H ∇ℓ_λ / ‖∇ℓ_λ‖² = ∇ℓ_λᵀ∇‖∇ℓ_λ‖² / ‖∇ℓ_λ‖²`` (eq. 17, 19)
  by double backprop: two backward passes, no Hessian.
* :func:`loss_change_fraction` — eq. 20: the share of the objective's decrease made after the
  run entered (or stayed in) a regime.

Milne's theory is for squared loss ``ℓ = (1/2N) Σ ‖f − y‖²``, weight decay ``(λ/2)‖W‖²`` and
bias-free networks (this package's squared loss and ``weight_decay`` are exactly that); with biases
or another loss the numbers are still computed (on the weight matrices) and
``assumptions_hold`` says they are outside the theorem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .network import Architecture, Params, check_data, data_loss, forward, objective


@dataclass(frozen=True)
class RegionTest:
    """Milne's region test at one point.

    Attributes
    ----------
    theta_max : float
        Largest θ with ``W ∈ U(λ, θ)`` (supremum; ≤ 0 means ``W ∉ U(λ)``).
    in_region : bool
        ``theta_max > 0``.
    loss : float
        ``ℓ(W)``, the unregularised mean squared loss (with the ½).
    r : float
        ``max_i ‖a_i‖₂``.
    H : int
        Number of hidden layers.
    w_norm : float
        ``‖W‖_* = max_i ‖W_i‖₂`` (largest spectral norm of the weight matrices).
    lhs, rhs_at_zero : float
        ``ℓ^{1/2}‖W‖_*^{H−1}`` and ``λ / (√2 H(H+1) r)``: in ``U(λ)`` iff ``lhs < rhs_at_zero``.
    assumptions_hold : bool
        Squared loss and no biases (Milne's setting).
    """

    theta_max: float
    in_region: bool
    loss: float
    r: float
    H: int
    w_norm: float
    lhs: float
    rhs_at_zero: float
    assumptions_hold: bool


def region_theta(loss, w_norm, H: int, r: float, lam: float):
    """``θ_max = λ − √2 H(H+1) r ℓ^{1/2} ‖W‖_*^{H−1}`` (works on floats and numpy/torch arrays)."""
    return lam - math.sqrt(2.0) * H * (H + 1) * r * loss ** 0.5 * w_norm ** (H - 1)


def spectral_norm(params: Params) -> float:
    """``‖W‖_*``: the largest operator 2-norm over the weight matrices."""
    return max(float(torch.linalg.matrix_norm(W.detach(), ord=2)) for W, _ in params)


def region_test(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor,
                weight_decay: float) -> RegionTest:
    """Milne's region test ``W ∈ U(λ, θ)`` with the largest θ (Def 2, eq. 6).

    Examples
    --------
    >>> import torch
    >>> from multiconvex.nets import Architecture, region_test
    >>> arch = Architecture((1, 2, 1), bias=False)
    >>> W = [(torch.tensor([[1.0], [-1.0]], dtype=torch.float64), None),
    ...      (torch.tensor([[0.25, -0.25]], dtype=torch.float64), None)]
    >>> X = torch.tensor([[1.0], [-0.5]], dtype=torch.float64)
    >>> rt = region_test(arch, W, X, X / 4, weight_decay=0.4)  # fits f(x) = x/4 exactly: ℓ = 0
    >>> rt.theta_max, rt.in_region
    (0.4, True)
    """
    check_data(arch, X, T, where="region_test", params=params, weight_decay=weight_decay)
    H = arch.hidden
    with torch.no_grad():
        loss = float(data_loss(arch, forward(arch, params, X)[0], T)) if arch.loss == "squared" else \
            float(0.5 * ((forward(arch, params, X)[0] - T) ** 2).sum(1).mean())
    r = float(X.norm(dim=1).max())
    wn = spectral_norm(params)
    lhs = math.sqrt(max(loss, 0.0)) * wn ** (H - 1) if H > 0 else 0.0  # no hidden layer: convex, nothing to test
    denom = math.sqrt(2.0) * H * (H + 1) * r if H > 0 else math.inf
    theta = region_theta(max(loss, 0.0), wn, H, r, weight_decay) if H > 0 else weight_decay
    return RegionTest(theta_max=float(theta), in_region=bool(theta > 0), loss=loss, r=r, H=H, w_norm=wn,
                      lhs=lhs, rhs_at_zero=weight_decay / denom if H > 0 else math.inf,
                      assumptions_hold=arch.loss == "squared" and not arch.bias)


@dataclass(frozen=True)
class LambdaThreshold:
    """Lemma 4 / eq. 10: ``ℓ(0) = (1/2N)Σ‖y_i‖² < λ^{1+1/H} / (2 (H(H+1) r)^{2/H})`` iff ``λ > threshold``."""

    threshold: float
    loss_at_zero: float
    r: float
    H: int

    def holds(self, lam: float) -> bool:
        return lam > self.threshold


def lambda_threshold(X, T, H: int) -> LambdaThreshold:
    """The smallest weight decay for which eq. 10 holds (Lemma 4 then puts every global minimiser
    of ``ℓ_λ`` in some ``U(λ, θ)``): ``λ* = (2 (H(H+1) r)^{2/H} ℓ(0))^{H/(H+1)}``.

    Examples
    --------
    >>> import numpy as np
    >>> t = lambda_threshold(np.array([[1.0], [-1.0]]), np.array([[0.5], [0.5]]), H=1)
    >>> round(t.threshold, 6)  # ℓ(0) = 1/8, r = 1: (2 · 2² · 1/8)^{1/2} = 1
    1.0
    """
    if isinstance(H, bool) or not isinstance(H, int) or H < 1:
        raise InvalidInputError(f"lambda_threshold: H={H!r}: give the number of hidden layers, an integer >= 1 (with "
                                "none the problem is convex and every λ >= 0 will do).")
    X = np.asarray(X.detach().cpu() if torch.is_tensor(X) else X, dtype=float)
    T = np.asarray(T.detach().cpu() if torch.is_tensor(T) else T, dtype=float).reshape(len(X), -1)
    r = float(np.linalg.norm(X, axis=1).max())
    l0 = 0.5 * float((T ** 2).sum(1).mean())
    thr = (2.0 * (H * (H + 1) * r) ** (2.0 / H) * l0) ** (H / (H + 1.0))
    return LambdaThreshold(threshold=thr, loss_at_zero=l0, r=r, H=H)


def normalised_curvature(arch: Architecture, params: Params, X: torch.Tensor, T: torch.Tensor,
                         weight_decay: float) -> float:
    """``2 gᵀ H g / ‖g‖²`` at ``params`` with ``g = ∇ℓ_λ``, by double backprop (eq. 19).

    ``∇‖g‖² = 2 H g`` is the gradient of the squared gradient norm (one more backward pass
    through the graph of the first), so ``gᵀ∇‖g‖² / ‖g‖²`` needs no Hessian. Returns ``nan``
    where ``g = 0``.
    """
    check_data(arch, X, T, where="normalised_curvature", params=params, weight_decay=weight_decay)
    leaves = [t.detach().clone().requires_grad_(True) for W, b in params for t in ((W, b) if b is not None else (W,))]
    it = iter(leaves)
    p = [(next(it), next(it) if b is not None else None) for _, b in params]
    F = objective(arch, p, X, T, weight_decay)
    g = torch.autograd.grad(F, leaves, create_graph=True)
    gg = sum((gi ** 2).sum() for gi in g)
    if float(gg.detach()) == 0.0:
        return math.nan
    hg2 = torch.autograd.grad(gg, leaves)  # = 2 H g
    num = sum((gi.detach() * hi).sum() for gi, hi in zip(g, hg2))
    return float(num / gg.detach())


def loss_change_fraction(objectives, inside, mode: str = "stays") -> float:
    """Eq. 20: ``(γ(t0) − γ(t1)) / (γ(0) − γ(t1))`` along a run.

    Parameters
    ----------
    objectives : array (n,)
        ``γ`` at the recorded times (``γ(t1)`` is the last).
    inside : array of bool (n,)
        Whether the regime holds at each time (``curvature > 0``, or ``theta_max > 0`` for ``U(λ)``).
    mode : {"stays", "first"}
        ``t0`` is the first time after which ``inside`` stays true (eq. 20), or the first time it
        is true (Milne's toy experiment: "from when gradient descent first enters U(λ)").

    Returns
    -------
    float
        In ``[0, 1]`` for a decreasing run; 0 when the regime is never reached; ``nan`` when the
        objective did not change.

    Examples
    --------
    >>> loss_change_fraction([10, 6, 3, 2], [False, False, True, True])
    0.125
    """
    g = np.asarray(objectives, dtype=float)
    ins = np.asarray(inside, dtype=bool)
    total = g[0] - g[-1]
    if total == 0:
        return math.nan
    if mode == "first":
        hits = np.flatnonzero(ins)
        if hits.size == 0:
            return 0.0
        t0 = int(hits[0])
    else:
        if not ins[-1]:
            return 0.0
        outside = np.flatnonzero(~ins)
        t0 = int(outside[-1]) + 1 if outside.size else 0
    return float((g[t0] - g[-1]) / total)


__all__ = ["RegionTest", "region_test", "region_theta", "spectral_norm", "LambdaThreshold", "lambda_threshold",
           "normalised_curvature", "loss_change_fraction"]
