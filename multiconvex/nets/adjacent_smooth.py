"""The conjugate refinement of the adjacent-piece bound for logistic and softmax unit blocks.

The lower model of :mod:`multiconvex.nets.adjacent` takes a smooth loss's samples linearly at the point: for a sample
``i`` with one piece along the block, ``φ_i(t) = ℓ(f_i + v_i t)/N`` is replaced by ``φ_i(0) + φ_i'(0) t``. That is
valid for every step, but it drops all curvature, so ``P = λI`` and the bound is ``½‖r‖²/λ`` (``r`` the block's
gradient, up to the kinks' boxes): near a partial minimum with a small weight decay it stays far above the true gap.

Any tangent is as valid as the one at 0: ``φ_i(t) ≥ φ_i(t̂_i) + α_i (t − t̂_i)`` with ``α_i = φ_i'(t̂_i)`` (the
conjugate point ``α_i`` of the Fenchel dual, ``φ_i*(α_i) = α_i t̂_i − φ_i(t̂_i)``), for every ``t̂_i``. So with
``t̂ = Ad̂`` for any trial step ``d̂`` the lower model keeps its form, with ``g`` moved by ``Aᵀ(α − φ'(0))`` and a
constant ``Δ = Σ_i φ_i(0) − φ_i(t̂_i) + α_i t̂_i ≥ 0`` added to the bound::

    gap ≤ Δ(d̂) + bound of the lower model with g + Aᵀ(α(d̂) − φ'(0)).

At ``d̂`` the exact minimiser of a block whose samples all have one piece this is the true gap (``g + Aᵀα = −λd̂``:
``Δ + ½λ‖d̂‖²`` is ``F(θ⁰) − F(θ⁰ + d̂)``), so the bound is exact there whatever ``λ``; away from it any ``d̂``
still gives a valid bound. :func:`refined_bound` takes ``d̂`` by Newton steps on the model
(``H = P + Aᵀdiag(φ''(t̂))A``; the Hessian at the point kept above :data:`REBUILD_WORK`) from the first model's
residual, halving a step that does not lower the bound; it keeps the smallest bound and stops as soon as it is
``≤ tol``. Samples on a kink the block moves keep their linear boxes (the first model's): their curvature is not
used, and one trial step serves every side of the concave kinks (above
:data:`~multiconvex.nets.adjacent_unit.PER_SIDE_CONCAVE` of them; up to it each side is also refined on its own by
:meth:`~multiconvex.nets.adjacent_unit.UnitKinks.bound`), so with kinks the bound stays above the gap —
1.0–1.9× the gap that exact solves of every adjacent piece find at the fit's end point in
``tests/test_nets_adjacent_refine.py``, 1–3·10⁵× (median ~100) at near-minimum points a review built with several
kinks at λ = 1e-4…1e-6. Blocks whose Hessian costs more than :data:`MAX_WORK` are not refined. The rounding of
``Δ`` is paid (:meth:`SmoothSamples.at`).

Examples
--------
>>> import numpy as np, torch
>>> f = torch.zeros(3, 1, dtype=torch.float64); T = torch.ones(3, 1, dtype=torch.float64)
>>> V = torch.ones(3, 1, dtype=torch.float64)
>>> s = SmoothSamples.build("logistic", f, T, V, np.ones((3, 1)), 3, np.eye(1))
>>> alpha, delta, _ = s.at(np.zeros(3))  # the tangent at 0: the linear model itself
>>> alpha.round(3).tolist(), delta
([-0.167, -0.167, -0.167], 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from ..rounding import MidpointRadius, gamma
from .adjacent_terms import loss_gradient
from .network import Architecture, sample_losses

#: Trial steps at most (each one a pass over the samples, one bound of the model and a c × c Cholesky).
MAX_STEPS = 20

#: Steps that do not lower the bound are halved this many times in a row at most: where the kinks' boxes decide the
#: bound no tangent lowers it (the certifying pass after one digits sweep, 54 such blocks: 14 s instead of 4 s with
#: up to 20 halvings and a least squares factored anew each time; 3.8-4.5 s against 3.3-3.6 s without it now).
MAX_HALVINGS = 2

#: No refinement for a block whose Hessian ``AᵀDA`` (``n`` samples × ``c²``) costs more multiply-adds than this (~0.1 s
#: on one core): the first-order bound stands there (an MNIST first layer, ``c = 785``, 5,000 samples: 3·10⁹).
MAX_WORK = 2e8

#: Up to this many multiply-adds the Hessian is rebuilt at each trial step (Newton); above, the one at the point is
#: kept (a quasi-Newton step: still a valid bound at every step, slower to tighten).
REBUILD_WORK = 2e7

_EPS = float(np.finfo(float).eps)


def curvature_along(loss: str, out: torch.Tensor, T: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``vᵀ∇²ℓ(f) v`` per sample, ``(n,)``, for output slopes ``V`` ``(n, n_out)``."""
    if loss == "squared":
        return (V * V).sum(dim=1)
    if loss == "logistic":
        s = torch.sigmoid(-T * out)
        return (s * (1.0 - s) * V * V).sum(dim=1)
    p = torch.softmax(out, dim=1)
    pv = (p * V).sum(dim=1)
    return ((p * V * V).sum(dim=1) - pv * pv).clamp_min(0.0)


@dataclass
class SmoothSamples:
    """One unit block's samples with one piece along the block, as 1-D convex functions ``φ_i(t) = ℓ(f_i + v_i t)/N``.

    Attributes
    ----------
    A : (n, c)
        Their inputs ``ã_i`` (a 1 for the bias).
    c0 : (n,)
        ``φ_i'(0)``: their slopes as the first lower model holds them in ``g``.
    H : tuple
        The Cholesky factor of ``P + Σ_i φ_i''(0) ã_iã_iᵀ`` (``scipy.linalg.cho_factor``), for the first trial
        step.
    """

    A: np.ndarray
    c0: np.ndarray
    H: tuple
    loss: str
    f: torch.Tensor
    T: torch.Tensor
    V: torch.Tensor
    N: int
    phi0: torch.Tensor

    @classmethod
    def build(cls, loss: str, f: torch.Tensor, T: torch.Tensor, V: torch.Tensor, A: np.ndarray, N: int,
              P: np.ndarray) -> SmoothSamples:
        """From the samples' outputs ``f``, targets ``T``, output slopes ``V`` (each ``(n, n_out)``), inputs ``A``,
        the data set's size ``N`` and the first model's ``P``."""
        arch = Architecture((1, 1, f.shape[1]), loss)
        c0 = ((loss_gradient(arch, f, T) * V).sum(dim=1) / N).cpu().numpy()
        m0 = (curvature_along(loss, f, T, V) / N).cpu().numpy()
        H = P + (A.T * m0) @ A
        return cls(A, c0, scipy.linalg.cho_factor(0.5 * (H + H.T), lower=True), loss, f, T, V, N,
                   sample_losses(loss, f, T) / N)

    def curvature(self, t: np.ndarray) -> np.ndarray:
        """``φ_i''(t̂_i)`` per sample."""
        tt = torch.as_tensor(t, dtype=self.f.dtype, device=self.f.device)
        return (curvature_along(self.loss, self.f + self.V * tt[:, None], self.T, self.V) / self.N).cpu().numpy()

    def at(self, t: np.ndarray) -> tuple[np.ndarray, float, float]:
        """``(α, Δ, rounding)`` for the tangents at ``t̂ = t``: ``α_i = φ_i'(t̂_i)``, ``Δ = Σ_i φ_i(0) − φ_i(t̂_i) +
        α_i t̂_i`` (``≥ 0`` by convexity; clipped at 0 per sample, where rounding would make it negative), and an
        allowance for the rounding of ``Δ``: ``(8 + log₂ n)·ε·Σ_i (|φ_i(0)| + |φ_i(t̂_i)| + |α_i t̂_i|)``."""
        tt = torch.as_tensor(t, dtype=self.f.dtype, device=self.f.device)
        out = self.f + self.V * tt[:, None]
        arch = Architecture((1, 1, out.shape[1]), self.loss)
        phi = sample_losses(self.loss, out, self.T) / self.N
        alpha = (loss_gradient(arch, out, self.T) * self.V).sum(dim=1) / self.N
        at = alpha * tt
        delta = (self.phi0 - phi + at).clamp_min(0.0)
        size = (self.phi0.abs() + phi.abs() + at.abs()).sum()
        rounding = (8.0 + math.log2(max(2, tt.numel()))) * _EPS * float(size)
        return alpha.cpu().numpy(), float(delta.sum()), rounding


def refined_bound(P: np.ndarray, g: MidpointRadius, first: float, direction: np.ndarray, samples: SmoothSamples,
                  model_bound: Callable[[MidpointRadius, float | None], tuple[float | None, np.ndarray | None]],
                  tol: float | None) -> float:
    """:func:`refine`'s bound alone."""
    return refine(P, g, first, direction, samples, model_bound, tol)[0]


def refine(P: np.ndarray, g: MidpointRadius, first: float, direction: np.ndarray, samples: SmoothSamples,
           model_bound: Callable[[MidpointRadius, float | None], tuple[float | None, np.ndarray | None]],
           tol: float | None) -> tuple[float, np.ndarray | None]:
    """The smallest of ``first`` and the refined bounds ``Δ(d̂) + model_bound(g + Aᵀ(α(d̂) − φ'(0)))`` over the trial
    steps ``d̂`` (module docstring): the first ``−H⁻¹r`` with ``r = −P·direction`` the first model's residual, then
    Newton steps on ``Σ φ_i(ã_iᵀd) + (the kinks' linear terms) + ½λ‖θ⁰ + d‖²``, whose gradient at ``d̂`` is the new
    model's residual plus ``Pd̂`` (``P(d̂ − direction)``) and whose Hessian is ``P + Aᵀdiag(φ''(ã_iᵀd̂))A`` (the one
    at the point above :data:`REBUILD_WORK` multiply-adds).

    ``model_bound(g, tol)`` is the first model's bound with another ``g`` (the same ``P`` and kink boxes): its value
    and direction. ``g`` carries its rounding's radius, and each moved ``g`` the rounding of its sum
    (:meth:`~multiconvex.rounding.MidpointRadius.plus`); ``Δ + bound`` is rounded up. A step that does not lower the
    bound is halved, :data:`MAX_HALVINGS` times in a row at most; the steps stop at ``≤ tol``, when one gains less
    than ``1e-12`` of the bound, or after :data:`MAX_STEPS`.

    Returns the bound and the trial step ``d̂`` it was found at (where the refined model puts the block's step; the
    first model's ``direction`` when no step lowered ``first``)."""
    best = first
    if samples.A.shape[0] == 0 or direction is None:
        return best, direction
    at_best = np.zeros_like(direction)
    rebuild = samples.A.shape[0] * samples.A.shape[1] ** 2 <= REBUILD_WORK
    step = scipy.linalg.cho_solve(samples.H, P @ direction)  # −H⁻¹r, r = −P·direction
    halvings = 0
    for _ in range(MAX_STEPS):
        d = at_best + step
        t = samples.A @ d
        alpha, delta, rounding = samples.at(t)
        extra = delta + rounding
        val, dirn = None, None
        if math.isfinite(extra) and (tol is None or extra <= tol):  # else this tangent's constant alone is above tol
            val, dirn = model_bound(g.plus(samples.A, alpha - samples.c0), None if tol is None else tol - extra)
        total = math.inf if val is None else (extra + val) * (1.0 + gamma(2))
        if val is None or dirn is None or not total < best:
            halvings += 1
            if halvings > MAX_HALVINGS:
                break
            step = 0.5 * step  # no lower: half the step
            continue
        halvings = 0
        gain, best, at_best = best - total, total, d
        if tol is not None and best <= tol or gain <= 1e-12 * best:
            break
        step = -scipy.linalg.cho_solve(_hessian_at(samples, P, t, rebuild), P @ (d - dirn))  # gradient P(d − dirn)
    return best, (at_best if best < first else direction)


def _hessian_at(samples: SmoothSamples, P: np.ndarray, t: np.ndarray, rebuild: bool) -> tuple:
    """The Cholesky factor of the model's Hessian ``P + Aᵀdiag(φ''(t))A`` at ``t`` (``rebuild``), else the one at the
    point (:attr:`SmoothSamples.H`; also where the new one has no factor)."""
    if not rebuild:
        return samples.H
    H = P + (samples.A.T * samples.curvature(t)) @ samples.A
    try:
        return scipy.linalg.cho_factor(0.5 * (H + H.T), lower=True)
    except np.linalg.LinAlgError:
        return samples.H


__all__ = ["MAX_HALVINGS", "MAX_STEPS", "MAX_WORK", "REBUILD_WORK", "SmoothSamples", "curvature_along", "refine",
           "refined_bound"]
