"""Smooth convex losses of one linear form per row, under one interval per row: Newton steps on DAQP, a dual bound.

The problem (a ReLU unit block with a logistic or softmax loss, :mod:`multiconvex.nets.smooth_units`)::

    minimise  Φ(x) = Σ_i φ_i(c_iᵀx) + (μ/2)‖x‖² − bᵀx    subject to  lower_i ≤ c_iᵀx ≤ upper_i

with every ``φ_i`` a smooth convex scalar function and ``μ > 0``. Each step solves the Newton model
``½yᵀHy + (∇Φ − Hx)ᵀy`` (``H = Cᵀ diag(φ'') C + μI``) under the same rows exactly with DAQP (dense
active set; its multipliers come back with the step) and moves along ``y − x`` with a backtracking line
search on ``Φ`` itself. The iterates stay feasible after the first step, so ``Φ`` at them is an upper
bound of the optimum.

**The lower bound.** With ``ψ_i(z) = φ_i(z) + 1[lower_i ≤ z ≤ upper_i]``, Fenchel duality gives, for
every ``α ∈ R^m``::

    min Φ ≥ D(α) = −Σ_i ψ_i*(α_i) − ‖Cᵀα − b‖² / (2μ).

``ψ_i*`` is bounded above without evaluating any conjugate (entropy) in closed form: for any ``z̄`` in
the interval, concavity of ``z ↦ αz − φ_i(z)`` gives ``ψ_i*(α) ≤ αz̄ − φ_i(z̄) + max_{z ∈ [lower, upper]}
(α − φ_i'(z̄))(z − z̄)``. The bound takes ``z̄`` = the QP step's ``c_iᵀy`` clipped to the interval and
``α_i = φ_i'(z̄) + ν_i`` with ``ν`` the step's multipliers (kept only with the sign that its bound allows),
so the last term is 0 up to rounding and the bound is tight at the optimum (Fenchel–Young equality).
It holds for **any** ``α``: an inaccurate multiplier only loosens it. The gap ``Φ(x) − D`` reported is
therefore never smaller than the true one (up to floating-point rounding of the sums).

Examples
--------
>>> import numpy as np
>>> def loss(z):  # φ(z) = log(1 + e^z) on every row
...     return np.logaddexp(0.0, z), 1 / (1 + np.exp(-z)), np.exp(-np.logaddexp(0.0, z) - np.logaddexp(0.0, -z))
>>> C = np.array([[1.0, 0.0], [1.0, 1.0]])
>>> out = solve_separable(C, np.array([0.5, -np.inf]), np.array([np.inf, 1.0]), 0.1, np.zeros(2), loss,
...                       np.array([1.0, 0.0]), target=1e-10)
>>> out.status, round(float(out.x[0]), 6), bool(0 <= out.value - out.bound <= 1e-10)
('optimal', 0.5, True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import status as st
from .daqp_qp import STATUS_MAP
from .matrix import finite_or_big

#: ``loss(z) -> (φ(z), φ'(z), φ''(z))``, each ``(m,)``: the rows' scalar functions and derivatives.
ScalarLoss = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: DAQP's constraint sense bits: in the working set, at its lower side.
_ACTIVE, _LOWER = 1, 2
_ARMIJO = 1e-4


@dataclass
class NewtonOutcome:
    """What :func:`solve_separable` found.

    ``value`` is ``Φ(x)``, ``bound`` a proven lower bound of ``min Φ`` (``-inf`` when none was found),
    ``status`` ``"optimal"`` when ``value − bound`` reached the target, ``"optimal_inaccurate"`` when the
    iterations ran out first (``x`` is still feasible and ``bound`` still valid), or DAQP's status when a
    step failed before a feasible point was reached (``x`` is then ``None``).
    """

    status: str
    x: np.ndarray | None
    value: float
    bound: float
    iterations: int
    qp_time: float
    wall_time: float


def _objective(loss: ScalarLoss, C: np.ndarray, mu: float, b: np.ndarray, x: np.ndarray) -> float:
    return float(loss(C @ x)[0].sum() + 0.5 * mu * (x @ x) - b @ x)


def dual_bound(loss: ScalarLoss, C: np.ndarray, lower: np.ndarray, upper: np.ndarray, mu: float, b: np.ndarray,
               z: np.ndarray, nu: np.ndarray) -> float:
    """``D(α)`` (module docstring) at ``α = φ'(z̄) + ν``, ``z̄ = clip(z)``: a lower bound of ``min Φ`` for any
    ``z`` and ``ν`` (``ν_i > 0`` is kept only where ``upper_i`` is finite, ``ν_i < 0`` where ``lower_i`` is)."""
    zb = np.clip(z, lower, upper)
    m = zb.size
    val, d1, _ = loss(zb)
    nu = np.where((nu > 0) & np.isfinite(upper) | (nu < 0) & np.isfinite(lower), nu, 0.0)
    alpha = d1 + nu
    s = alpha - d1  # the slope of z ↦ αz − φ(z) at z̄, as computed (0 exactly where ν = 0)
    with np.errstate(invalid="ignore"):
        extra = np.where(s > 0, s * (upper - zb), np.where(s < 0, s * (lower - zb), 0.0))
    conj = alpha * zb - val + np.maximum(extra, 0.0)
    r = C.T @ alpha - b
    quad = (r @ r) / (2.0 * mu)
    # the sums' rounding (relative 1e-16 per term, summed over m terms at most): taken off, so the bound stays one
    rounding = 4 * np.finfo(float).eps * (np.abs(conj).sum() + quad) * max(1.0, np.log2(max(m, 2)))
    return float(-conj.sum() - quad - rounding)


def _qp(H: np.ndarray, q: np.ndarray, C: np.ndarray, lower: np.ndarray, upper: np.ndarray, sense: np.ndarray | None,
        options: dict[str, Any]) -> tuple[str, np.ndarray | None, np.ndarray, float]:
    """``min ½yᵀHy + qᵀy, lower ≤ Cy ≤ upper`` by DAQP (from the working set ``sense`` when given, else from
    scratch): status, ``y``, the signed multipliers (``> 0`` upper side, ``< 0`` lower), seconds."""
    import daqp  # the solver's module is imported where it is used: checking availability must not load it

    lo, up = finite_or_big(lower), finite_or_big(upper)
    status, y, lam, spent = st.SOLVER_ERROR, None, np.zeros(C.shape[0]), 0.0
    for start in ([sense, None] if sense is not None else [None]):
        s0 = np.zeros(C.shape[0], dtype=np.int32) if start is None else start.copy()
        t0 = time.perf_counter()
        x, _f, flag, info = daqp.solve(H, q, C, up, lo, s0, **options)
        spent += time.perf_counter() - t0
        status = STATUS_MAP.get(int(flag), st.SOLVER_ERROR)
        if status == st.OPTIMAL:
            y, lam = np.asarray(x, dtype=float), np.asarray(info.get("lam", np.zeros(C.shape[0])), dtype=float)
            break
    return status, y, lam, spent


def solve_separable(C: np.ndarray, lower: np.ndarray, upper: np.ndarray, mu: float, b: np.ndarray, loss: ScalarLoss,
                    x0: np.ndarray, *, target: float = 0.0, max_iter: int = 50,
                    options: dict[str, Any] | None = None) -> NewtonOutcome:
    """Minimise ``Σ φ_i(c_iᵀx) + (μ/2)‖x‖² − bᵀx`` on ``lower ≤ Cx ≤ upper`` (module docstring).

    Parameters
    ----------
    C : array (m, n)
    lower, upper : arrays (m,)
        ``∓inf`` where a side is free; a crossed interval is the caller's to report (infeasible).
    mu : float
        ``> 0`` (the bound divides by it).
    b : array (n,)
    loss : callable
        ``z -> (φ(z), φ'(z), φ''(z))`` for the ``m`` rows (:data:`ScalarLoss`).
    x0 : array (n,)
        Start; it need not be feasible (the first step then goes to the first QP's solution).
    target : float
        Stop when ``Φ(x) − bound ≤ target`` (absolute) with status ``"optimal"``. At 0 the iterations run
        until the gap stops shrinking (the bound carries a rounding margin, so the status is then
        ``"optimal_inaccurate"``).
    max_iter : int
        Newton steps (QP solves) at most.
    options : dict, optional
        DAQP settings, passed through.
    """
    t_start = time.perf_counter()
    C = np.ascontiguousarray(C, dtype=float)
    m, n = C.shape
    opts = {"eps_prox": -1e-6, **(options or {})}
    bounded = bool(np.isfinite(lower).any() or np.isfinite(upper).any())
    x = np.asarray(x0, dtype=float).copy()
    z = C @ x
    feasible = bool(np.all((z >= lower) & (z <= upper)))
    best = -np.inf
    value = _objective(loss, C, mu, b, x) if feasible else np.inf
    sense: np.ndarray | None = None
    qp_time, it, prev_gap = 0.0, 0, np.inf
    for it in range(1, max_iter + 1):
        _, d1, d2 = loss(z)
        g = C.T @ d1 + mu * x - b
        H = (C.T * d2) @ C
        H[np.diag_indices(n)] += mu
        if bounded:
            status, y, nu, spent = _qp(H, g - H @ x, C, lower, upper, sense, opts)
            qp_time += spent
            if y is None:
                if feasible:
                    break  # keep the feasible iterate and the bound so far
                return NewtonOutcome(status, None, np.inf, best, it, qp_time, time.perf_counter() - t_start)
            sense = np.where(nu > 0, _ACTIVE, np.where(nu < 0, _ACTIVE | _LOWER, 0)).astype(np.int32)
            if np.count_nonzero(sense) > n or not sense.any():
                sense = None
        else:
            y, nu = x - np.linalg.solve(H, g), np.zeros(m)
        best = max(best, dual_bound(loss, C, lower, upper, mu, b, C @ y, nu))
        d = y - x
        if not feasible:
            x, feasible = y, True
            value = _objective(loss, C, mu, b, x)
        else:
            slope = float(g @ d)
            t = 1.0
            new = _objective(loss, C, mu, b, x + d)
            while new > value + _ARMIJO * t * slope and t > 1e-12:
                t *= 0.5
                new = _objective(loss, C, mu, b, x + t * d)
            if new <= value:
                x, value = x + t * d, new
        z = C @ x
        gap = value - best
        if gap <= target or it > 3 and gap >= prev_gap:
            break  # at the target, or at the rounding floor (no more progress)
        prev_gap = min(prev_gap, gap)
    best = min(best, value)  # Φ at a feasible point bounds the optimum from above: a bound above it is rounding
    status = st.OPTIMAL if value - best <= target else st.OPTIMAL_INACCURATE
    return NewtonOutcome(status, x, value, best, it, qp_time, time.perf_counter() - t_start)


__all__ = ["NewtonOutcome", "ScalarLoss", "dual_bound", "solve_separable"]
