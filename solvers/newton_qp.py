"""Smooth convex losses of one linear form per row, under one interval per row: Newton steps on DAQP, a dual bound.

The problem (a ReLU unit block with a logistic or softmax loss, :mod:`multiconvex.nets.smooth_units`)::

    minimise  Φ(x) = Σ_i φ_i(c_iᵀx) + (μ/2)‖x‖² − bᵀx    subject to  lower_i ≤ c_iᵀx ≤ upper_i

with every ``φ_i`` a smooth convex scalar function and ``μ > 0``. Each step solves the Newton model
``½yᵀHy + (∇Φ − Hx)ᵀy`` (``H = Cᵀ diag(φ'') C + μI``) under the same rows exactly with DAQP (dense
active set; its multipliers come back with the step) and moves along ``y − x`` with a backtracking line
search on ``Φ`` itself. The iterates stay feasible after the first step, so ``Φ`` at them is an upper
bound of the optimum.

**Each step's QP, exactly and cheaply.** A ReLU unit's piece has one row per sample, and most of them never
bind. A step after the first tries the last step's active rows as its active set: one equality-constrained
solve, kept only when every optimality condition checks out (:func:`_on_working_set`). Otherwise DAQP solves
it, from those rows (the first step: from the rows the start lies on), on a growing subset of the rows until
its answer satisfies all of them (:class:`_ScreenedRows`). Either way the answer is the QP's, to DAQP's
tolerances. Rows of norm below 1 go to DAQP divided by their norm (:class:`_ScaledRows`), so that its
``primal_tol`` is at most that distance in ``x`` whatever the rows' scale.
The bound below does not depend on how the step was found.

**The lower bound.** With ``ψ_i(z) = φ_i(z) + 1[lower_i ≤ z ≤ upper_i]``, Fenchel duality gives, for
every ``α ∈ R^m``::

    min Φ ≥ D(α) = −Σ_i ψ_i*(α_i) − ‖Cᵀα − b‖² / (2μ).

``ψ_i*`` is bounded above without evaluating any conjugate (entropy) in closed form: for any ``z̄``,
concavity of ``z ↦ αz − φ_i(z)`` (its tangent at ``z̄`` lies above it everywhere) gives ``ψ_i*(α) ≤ αz̄ −
φ_i(z̄) + max_{z ∈ [lower, upper]} (α − φ_i'(z̄))(z − z̄)``. The bound takes ``z̄`` = the QP step's ``c_iᵀy``
and ``α_i = φ_i'(z̄) + ν_i`` with ``ν`` the step's multipliers (kept only with the sign that its bound allows),
so the last term is ``ν_i`` times the step's distance to the row's side: 0 on the interval, a negative first-order
correction where the step lies beyond a side by DAQP's tolerance, and the bound is tight at the optimum
(Fenchel–Young equality). The step's own evaluation of the loss, which the line search needs anyway, serves it:
a ``z̄`` clipped to the intervals would need a second one at nearly every step (a step on its active rows lies a
rounding error beyond about half of them).
It holds for **any** ``α``: an inaccurate multiplier only loosens it. The gap ``Φ(x) − D`` reported is
therefore never smaller than the true one: the bound takes off a margin for the rounding of its sums, of the
conjugates' terms before they cancel and of ``Cᵀα − b`` (a worst-case bound, linear in the rows: BLAS adds them one
after another).

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
from scipy.linalg.lapack import dpotrf, dpotrs

from multiconvex.rounding import gamma

from . import status as st
from .bulk_active_set import guess_working_set
from .matrix import finite_or_big
from .whitened import MIN_VARS, Whitened, WhitenedRows, solve_daqp

#: ``loss(z) -> (φ(z), φ'(z), φ''(z))``, each ``(m,)``: the rows' scalar functions and derivatives.
ScalarLoss = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: DAQP's constraint sense bits: in the working set, at its lower side.
_ACTIVE, _LOWER = 1, 2
_ARMIJO = 1e-4
#: Screening (:class:`_ScreenedRows`): the rows nearest the start per variable, and the fewest rows worth it.
SCREEN_START = 4
SCREEN_MIN_ROWS = 200
#: A given start Hessian (``solve_separable``'s ``curvature``) is corrected on the rows whose ``φ''`` differs when they
#: are at most this share of the rows with curvature (the correction costs ``2·rows·n²``, forming it ``nz·n²``).
HESSIAN_UPDATE = 0.25
#: From this many variables on, each step finds its QP's working set in bulk (:mod:`.bulk_active_set`) before DAQP
#: is asked.
BULK_VARS = 128

#: ``(H, φ'')`` at a solve's start: its first step's Hessian and the rows' second derivatives it was formed from.
Curvature = tuple[np.ndarray, np.ndarray]


@dataclass
class NewtonOutcome:
    """What :func:`solve_separable` found.

    ``value`` is ``Φ(x)``, ``bound`` a proven lower bound of ``min Φ`` (``-inf`` when none was found),
    ``start_value`` is ``Φ(x0)`` (feasible or not), ``working`` the last step's working set (DAQP's ``sense`` per
    row; ``None`` when it had no active row), a warm start for a later solve with the same rows, and
    ``start_curvature`` the first step's Hessian with the ``φ''`` it came from (``None`` without a step), for a
    later solve from the same point (:func:`solve_separable`'s ``curvature``);
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
    start_value: float = float("nan")
    working: np.ndarray | None = None
    start_curvature: Curvature | None = None


def dual_bound(loss: ScalarLoss, C: np.ndarray, lower: np.ndarray, upper: np.ndarray, mu: float, b: np.ndarray,
               z: np.ndarray, nu: np.ndarray) -> float:
    """``D(α)`` (module docstring) at ``α = φ'(z̄) + ν``, ``z̄ = clip(z)``: a lower bound of ``min Φ`` for any
    ``z`` and ``ν`` (``ν_i > 0`` is kept only where ``upper_i`` is finite, ``ν_i < 0`` where ``lower_i`` is). The
    clipped ``z̄`` is one choice: :func:`_bound_at` holds at any ``z̄`` (at ``z`` itself a different, equally valid
    bound, as a rule within rounding of this one when ``z`` lies a rounding error off its interval)."""
    zb = np.clip(z, lower, upper)
    val, d1, _ = loss(zb)
    return _bound_at(C, lower, upper, mu, b, zb, val, d1, nu)


def _bound_at(C: np.ndarray, lower: np.ndarray, upper: np.ndarray, mu: float, b: np.ndarray, zb: np.ndarray,
              val: np.ndarray, d1: np.ndarray, nu: np.ndarray, abs_C: np.ndarray | None = None) -> float:
    """:func:`dual_bound` at ``z̄ = zb`` (anywhere: off the intervals too) with ``φ(z̄)``, ``φ'(z̄)`` given
    (``abs_C``: ``|C|``, when the caller keeps it; ``C`` itself when it has no negative entry)."""
    m, n = C.shape
    # the rows with a multiplier (as a rule about as many as variables) on their own: elsewhere α = φ'(z̄) and the
    # conjugate's bound is αz̄ − φ(z̄) (the slope below is 0 there); the same numbers as over every row
    act = np.flatnonzero(nu)
    nu_a, up_a, lo_a = nu[act], upper[act], lower[act]
    keep = (nu_a > 0) & np.isfinite(up_a) | (nu_a < 0) & np.isfinite(lo_a)
    act, nu_a, up_a, lo_a = act[keep], nu_a[keep], up_a[keep], lo_a[keep]
    alpha = d1.copy()
    alpha[act] += nu_a
    s = alpha[act] - d1[act]  # the slope of z ↦ αz − φ(z) at z̄, as computed
    # max over the interval of s·(z − z̄): at the side s points to (negative for a z̄ beyond that side)
    zb_a = zb[act]
    with np.errstate(invalid="ignore"):  # 0·inf where s = 0 on a free side: not taken
        extra = np.where(s > 0, s * (up_a - zb_a), np.where(s < 0, s * (lo_a - zb_a), 0.0))
    az = alpha * zb
    conj = az - val
    conj[act] += extra
    # the bound must hold for the numbers as computed, so the rounding is taken off:
    # - r = Cᵀα − b is a BLAS product, which adds its m terms one after another (in a few lanes): each entry is off
    #   by at most γ_{m+1}·((|C|ᵀ|α|)_j + |b_j|), however much they cancel; ‖r‖²/2μ is bounded above from |r̂| + that
    #   (a computed r̂ of 0 may be an exact r far from it);
    # - the conjugates' terms before they cancel (αz̄ and φ(z̄) may be far larger than their difference), summed by
    #   numpy's pairwise sums (error ~ log2(m)·eps relative to the sum of magnitudes)
    if abs_C is C:  # C ≥ 0 (a ReLU layer's inputs): both products in one pass over C
        both = C.T @ np.column_stack((alpha, np.abs(alpha)))
        r, mag = both[:, 0] - b, both[:, 1]
    else:
        r, mag = C.T @ alpha - b, (np.abs(C) if abs_C is None else abs_C).T @ np.abs(alpha)
    r_hi = np.abs(r) + gamma(m + 1) * (mag + np.abs(b))
    quad = (r_hi @ r_hi) / (2.0 * mu) * (1.0 + gamma(n + 3))
    terms = np.abs(az).sum() + np.abs(val).sum() + np.abs(extra).sum()
    rounding = 4 * np.finfo(float).eps * terms * max(1.0, np.log2(max(m, 2)))
    return float(-conj.sum() - quad - rounding)


def _hessian(C: np.ndarray, d2: np.ndarray, mu: float) -> np.ndarray:
    """``Cᵀ diag(φ'') C + μI`` from the rows with curvature only (a dead unit's samples have none), as
    ``RᵀR`` with ``R = diag(√φ'') C`` (one symmetric product)."""
    nz = np.flatnonzero(d2 > 0)
    R = (C[nz] if nz.size < C.shape[0] else C) * np.sqrt(d2[nz])[:, None]
    H = R.T @ R
    H[np.diag_indices(C.shape[1])] += mu
    return H


def _corrected_hessian(C: np.ndarray, d2: np.ndarray, mu: float, given: Curvature) -> np.ndarray:
    """:func:`_hessian` from a given one (same rows, same ``μ``, formed from ``φ''`` = ``given[1]``), corrected by
    ``Σ (φ''_i − φ''⁰_i) c_i c_iᵀ`` over the rows where the two differ, when those are few and ``μ`` is not tiny
    against ``H`` (else formed anew)."""
    H0, d0 = given
    n = C.shape[1]
    # the correction subtracts terms of H0: its rounding (~n·eps·max H0) must stay far below μ, the least eigenvalue
    # of H, or the corrected matrix need not be positive definite
    if H0.shape != (n, n) or d0.shape != d2.shape or not mu >= 1e-10 * float(np.diagonal(H0).max()):
        return _hessian(C, d2, mu)
    diff = d2 - d0
    rows = np.flatnonzero(diff)
    if rows.size > HESSIAN_UPDATE * np.count_nonzero(d2):
        return _hessian(C, d2, mu)
    Cr = C[rows]
    return H0 + Cr.T @ (Cr * diff[rows, None])


def _qp(H: np.ndarray, q: np.ndarray, C: np.ndarray, lo: np.ndarray, up: np.ndarray, sense: np.ndarray | None,
        options: dict[str, Any], white: Whitened | None = None) -> tuple[str, np.ndarray | None, np.ndarray, float]:
    """``min ½yᵀHy + qᵀy, lo ≤ Cy ≤ up`` (finite bounds: ±BIG for a free side) by DAQP (from the working set
    ``sense`` when given, then from scratch unless out of time): status, ``y`` (optimal only), the signed
    multipliers (``> 0`` upper side, ``< 0`` lower), seconds. Whitened (:func:`~.whitened.solve_daqp`; ``white``: as
    the caller whitened it) from ``MIN_VARS`` variables on, and on ``H`` itself again should that solve fail."""
    import daqp  # the solver's module is imported where it is used: checking availability must not load it

    out = solve_daqp(daqp, H, q, C, lo, up, [None] if sense is None else [sense, None], options,
                     white if white is not None else C.shape[1] >= MIN_VARS, (st.OPTIMAL, st.TIME_LIMIT))
    if out.status != st.OPTIMAL or out.x is None:
        return out.status, None, np.zeros(C.shape[0]), out.wall
    return out.status, out.x, np.asarray(out.info.get("lam", np.zeros(C.shape[0])), dtype=float), out.wall


def _on_working_set(H: np.ndarray, q: np.ndarray, C: np.ndarray, lo: np.ndarray, up: np.ndarray, sense: np.ndarray,
                    tol: float, dual_tol: float, L: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The QP's answer ``(y, ν)`` (as :func:`_qp`) if the working set ``sense`` is its active set, else ``None``.

    Solves ``Hy + q + C_Wᵀλ = 0``, ``C_W y = b_W`` on the working set's rows ``W`` at their sides (Schur
    complement; a few small dense factorisations), then checks the rest of the optimality conditions: every
    row within ``tol`` of its interval, ``W``'s rows within ``tol`` of their sides, ``λ`` of the side's sign
    (up to ``dual_tol``). Those together are the conditions DAQP stops on (on the same rows, scaled:
    :class:`_ScaledRows`), so the answer is the same to its tolerances (the QP is strictly convex: one minimiser).
    A Newton step's active set is most often the last step's: this replaces an active-set run that re-adds every
    row of it one by one. ``L``: ``H``'s Cholesky factor when the caller has it.
    """
    w = np.flatnonzero(sense)
    if not w.size:
        return None
    lower_side = (sense[w] & _LOWER) != 0
    A, rhs = C[w], np.where(lower_side, lo[w], up[w])
    # LAPACK directly (scipy.linalg's wrappers check and copy every array: about a third of this call's time); a
    # factorisation that fails (W's rows dependent, H not positive definite) declines, and a non-finite H or q
    # gives a non-finite y, declined below
    if L is None:
        L, info = dpotrf(H, lower=1, clean=0)
        if info != 0:
            return None
    sol, info = dpotrs(L, np.column_stack([A.T, q]), lower=1)
    if info != 0:
        return None
    HiA, Hiq = sol[:, :-1], sol[:, -1]
    S, info = dpotrf(A @ HiA, lower=1, clean=0)
    if info != 0:
        return None
    lam, info = dpotrs(S, -(rhs + A @ Hiq), lower=1)
    if info != 0:
        return None
    y = -(Hiq + HiA @ lam)
    nu = np.zeros(C.shape[0])
    nu[w] = lam
    return (y, nu) if _optimal_on(C, lo, up, sense, y, nu, tol, dual_tol) else None


def _optimal_on(C: np.ndarray, lo: np.ndarray, up: np.ndarray, sense: np.ndarray, y: np.ndarray, nu: np.ndarray,
                tol: float, dual_tol: float) -> bool:
    """Whether ``y`` with the multipliers ``nu`` (0 off the working set ``sense``; stationary on it, as computed)
    meets the conditions DAQP stops on (:func:`_on_working_set`): ``y`` finite, every row within ``tol`` of its
    interval, the set's rows within ``tol`` of their sides, ``nu`` of the side's sign (up to ``dual_tol``)."""
    w = np.flatnonzero(sense)
    lower_side = (sense[w] & _LOWER) != 0
    lam = nu[w]
    if not np.all(np.isfinite(y)) or np.any(np.where(lower_side, lam > dual_tol, lam < -dual_tol)):
        return False
    r = C @ y
    rhs = np.where(lower_side, lo[w], up[w])
    return not (np.any(np.maximum(r - up, lo - r) > tol) or np.any(np.abs(r[w] - rhs) > tol))


def _working_set(nu: np.ndarray) -> np.ndarray:
    """DAQP's ``sense`` for the rows with a multiplier: active, at the side its sign gives."""
    return np.where(nu > 0, _ACTIVE, np.where(nu < 0, _ACTIVE | _LOWER, 0)).astype(np.int32)


@dataclass(frozen=True)
class _ScaledRows:
    """The rows as every Newton QP takes them: a row of norm below 1 divided by its norm (its sides likewise).

    DAQP checks a row's violation against ``primal_tol`` as it is: an absolute tolerance in ``c_iᵀx``, a distance
    ``primal_tol / ‖c_i‖`` in ``x``. On rows of norm 1e-7 that accepted every point within 10 of a row in ``x``
    (intervals of width 1e-7 in ``z`` taken as satisfied), and the answer depended on which rows were in DAQP's
    problem (screened or not). Scaled, every row's tolerance is at most ``primal_tol`` in ``x``; rows of norm 1
    or more (a network's inputs with their column of ones) go to DAQP as given. The checks here
    (:func:`_on_working_set`, :class:`_ScreenedRows`, the start's active rows) apply DAQP's ``primal_tol`` to
    the same scaled rows. A QP's multipliers ``λ`` on the scaled rows are ``ν = λ / scale`` on the given ones
    (:meth:`multipliers`); the dual bound is computed on the given rows.

    Attributes
    ----------
    C : (m, n)
        The scaled rows (``C`` itself when no row is scaled).
    lower, upper : (m,)
        Their sides, ``∓inf`` where free.
    lo, up : (m,)
        The same with ``∓BIG`` for a free side (DAQP takes no infinities).
    scale : (m,)
        What each row was divided by: ``min(1, ‖c_i‖)``, 1 for a zero row.
    norms : (m,)
        The norms of the scaled rows (``max(1, ‖c_i‖)``; 1 for a zero row).
    """

    C: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    lo: np.ndarray
    up: np.ndarray
    scale: np.ndarray
    norms: np.ndarray

    @classmethod
    def of(cls, C: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> _ScaledRows:
        norms = np.sqrt(np.einsum("ij,ij->i", C, C))
        scale = np.where(norms > 0, np.minimum(norms, 1.0), 1.0)
        new_norms = np.where(norms > 0, np.maximum(norms, 1.0), 1.0)
        if np.all(scale == 1.0):
            return cls(C, lower, upper, finite_or_big(lower), finite_or_big(upper), scale, new_norms)
        with np.errstate(over="ignore"):  # a side beyond max float in x: never reached, free as ±inf
            lower_s, upper_s = lower / scale, upper / scale
        return cls(C / scale[:, None], lower_s, upper_s, finite_or_big(lower_s), finite_or_big(upper_s), scale,
                   new_norms)

    def multipliers(self, lam: np.ndarray) -> np.ndarray:
        """The multipliers ``ν`` of the given rows from those of the scaled rows."""
        return lam / self.scale


class _ScreenedRows:
    """The Newton QPs of one solve on a growing subset of the rows (constraint generation), exactly.

    A QP on a subset ``S`` of the rows whose answer satisfies every other row is the QP's answer on all rows
    (convexity: the rows outside ``S`` take multiplier 0, and KKT holds). ``S`` starts as the rows nearest to
    the start point (distance to the nearest finite side, in the variables' space) and grows by the rows an
    answer violates, re-solved from its working set, until none is. ``S`` is kept between Newton steps (a
    row that bound one step tends to bind the next). DAQP's work per active-set change is ``|S| · n`` instead
    of ``m · n``, and its set-up (``A R⁻¹``) ``|S| · n²`` instead of ``m · n²``.

    The rows are the scaled rows (:class:`_ScaledRows`) and a row outside ``S`` counts as violated beyond DAQP's own
    ``primal_tol`` (``tol``): the answer on ``S`` is then held to the test that DAQP applies to ``S``'s rows, and
    equals the answer on all rows to DAQP's accuracy.
    """

    def __init__(self, rows: _ScaledRows, z: np.ndarray, options: dict[str, Any], tol: float):
        self.C, self.lo, self.up, self.options, self.tol = rows.C, rows.lo, rows.up, options, tol
        m, n = rows.C.shape
        with np.errstate(invalid="ignore"):  # inf where both sides are free; < 0 where violated
            dist = np.minimum(z - rows.lower, rows.upper - z) / rows.norms
        dist[~np.isfinite(dist) & ~(dist < 0)] = np.inf
        self.rows = np.zeros(m, dtype=bool)
        k = min(m, SCREEN_START * n)
        near = np.argpartition(dist, k - 1)[:k] if k < m else np.arange(m)
        self.rows[near[np.isfinite(dist[near])]] = True

    def solve(self, H: np.ndarray, q: np.ndarray, sense: np.ndarray | None, white: WhitenedRows | None = None
              ) -> tuple[str, np.ndarray | None, np.ndarray, float]:
        """As :func:`_qp` on every row (``sense`` over every row); ``white``: the step's rows whitened as the subsets
        ask for them (each row once over the rounds)."""
        C, m = self.C, self.C.shape[0]
        if sense is not None:
            self.rows |= sense != 0
        spent = 0.0
        while True:
            idx = np.flatnonzero(self.rows)
            status, y, lam, t = _qp(H, q, C[idx], self.lo[idx], self.up[idx],
                                    sense[idx] if sense is not None else None, self.options,
                                    white.on(idx) if white is not None else None)
            spent += t
            if status == st.TIME_LIMIT:  # out of time (a user's DAQP time_limit): no second try
                return status, None, np.zeros(m), spent
            if y is None:  # not settled on the subset: all rows, from scratch, as without screening
                status, y, nu, t = _qp(H, q, C, self.lo, self.up, None, self.options,
                                       white.on(np.arange(m)) if white is not None else None)
                return status, y, nu, spent + t
            r = C @ y
            bad = (np.maximum(r - self.up, self.lo - r) > self.tol) & ~self.rows
            nu = np.zeros(m)
            nu[idx] = lam
            if not bad.any():
                return status, y, nu, spent
            self.rows |= bad
            sense = _working_set(nu)


def _evaluate(loss: ScalarLoss, C: np.ndarray, mu: float, b: np.ndarray, x: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``Φ(x)``, ``z = Cx`` and the rows' ``φ'``, ``φ''`` there (one evaluation of the loss)."""
    z = C @ x
    val, d1, d2 = loss(z)
    return float(val.sum() + 0.5 * mu * (x @ x) - b @ x), z, d1, d2


def solve_separable(C: np.ndarray, lower: np.ndarray, upper: np.ndarray, mu: float, b: np.ndarray, loss: ScalarLoss,
                    x0: np.ndarray, *, target: float = 0.0, max_iter: int = 50,
                    options: dict[str, Any] | None = None, screen: bool | None = None,
                    working: np.ndarray | None = None, curvature: Curvature | None = None) -> NewtonOutcome:
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
        ``z -> (φ(z), φ'(z), φ''(z))`` for the ``m`` rows (:data:`ScalarLoss`); ``φ'' ≥ 0``.
    x0 : array (n,)
        Start; it need not be feasible (the first step then goes to the first QP's solution).
    target : float
        Stop when ``Φ(x) − bound ≤ target`` (absolute) with status ``"optimal"``. At 0 the iterations run
        until the gap stops shrinking (the bound carries a rounding margin, so the status is then
        ``"optimal_inaccurate"``).
    max_iter : int
        Newton steps at most.
    options : dict, optional
        DAQP settings, passed through.
    screen : bool, optional
        Solve each Newton QP on a growing subset of the rows (:class:`_ScreenedRows`; the same answer).
        Default: when there are more than ``SCREEN_MIN_ROWS`` rows and ``SCREEN_START`` rows per variable.
    working : int array (m,), optional
        Rows for the first step's working set (DAQP's ``sense``: an earlier solve's :attr:`NewtonOutcome.working`
        of a problem with the same rows), besides the rows the start lies on (those keep their side); used whether
        the start is feasible or not, unless the union has more rows than variables. Only where to start: the
        answer does not depend on it.
    curvature : (H, φ'') at ``x0``, optional
        The first step's Hessian and the ``φ''`` it came from of a problem with the same rows and ``μ`` at the same
        start whose loss differs on some rows (an earlier solve's :attr:`NewtonOutcome.start_curvature`: the own
        piece's, for a solve on the neighbouring piece): the first step corrects it on the rows whose ``φ''``
        differs, when they are few (:data:`HESSIAN_UPDATE`), instead of forming it again. A Hessian only shapes
        the steps: the bound does not depend on it.
    """
    t_start = time.perf_counter()
    C = np.ascontiguousarray(C, dtype=float)
    m, n = C.shape
    opts = {"eps_prox": -1e-6, **(options or {})}
    bounded = bool(np.isfinite(lower).any() or np.isfinite(upper).any())
    x = np.asarray(x0, dtype=float).copy()
    value, z, d1, d2 = _evaluate(loss, C, mu, b, x)
    start_value = value
    feasible = bool(np.all((z >= lower) & (z <= upper)))
    if not feasible:
        value = np.inf
    if screen is None:
        screen = m > max(SCREEN_MIN_ROWS, 2 * SCREEN_START * n)
    scaled = _ScaledRows.of(C, lower, upper) if bounded else None
    tol, dual_tol = float(opts.get("primal_tol", 1e-6)), float(opts.get("dual_tol", 1e-12))
    rows = _ScreenedRows(scaled, z / scaled.scale, opts, tol) if scaled is not None and screen else None
    best = -np.inf
    # the first step's working set: the rows the start lies on (at a point that an earlier solve of this block
    # moved to, as a rule its active set), and the given working set's rows besides (a neighbouring-piece solve's
    # start is as a rule just off its flipped samples' rows by rounding, infeasible: the given rows are all it has)
    # Below BULK_VARS variables the first step does not try that working set as its QP's active set
    # (:func:`_on_working_set`, as later steps do with the last step's): neither the given rows, the active set of
    # another piece's optimum, nor the rows the start lies on were, but in 2 of 113 tries in a digits sweep and 18 of
    # 215 in three small softmax fits (0 of 176 over three sweeps of digits [64, 64, 64, 10]): they only start DAQP
    # (from BULK_VARS on, the rounds of :mod:`.bulk_active_set` start from them)
    sense: np.ndarray | None = None
    if scaled is not None:
        if feasible:
            zn = z / scaled.scale
            sense = _working_set(np.where(scaled.upper - zn <= tol, 1.0,
                                          np.where(zn - scaled.lower <= tol, -1.0, 0.0)))
        if working is not None and working.shape == (m,):
            given = np.asarray(working, dtype=np.int32)
            given = np.where(given & _ACTIVE, given & (_ACTIVE | _LOWER), 0).astype(np.int32)
            sense = given if sense is None else np.where(sense != 0, sense, given).astype(np.int32)
        if sense is not None and (np.count_nonzero(sense) > n or not sense.any()):
            sense = None
    qp_time, it, prev_gap = 0.0, 0, np.inf
    start_curvature: Curvature | None = None
    abs_C = C if not (C < 0).any() else np.abs(C)  # the bound's rounding margin (:func:`_bound_at`)
    for it in range(1, max_iter + 1):
        g = C.T @ d1 + mu * x - b
        H = _corrected_hessian(C, d2, mu, curvature) if it == 1 and curvature is not None else _hessian(C, d2, mu)
        if it == 1:
            start_curvature = (H, d2)
        if scaled is not None:
            q = g - H @ x
            t_qp = time.perf_counter()
            # the step's factor of H, for the shortcut and for DAQP's whitened rows (each row whitened once over
            # the screening rounds)
            white = WhitenedRows(H, q, scaled.C) if n >= MIN_VARS else None
            known, guessing = None, 0.0
            if white is not None and white.L is not None and n >= BULK_VARS:
                # many variables: DAQP would add the active rows one at a time, each a pass over every row (and
                # whiten every row first); the working set is found in bulk from the last step's (a start's rows
                # at the first step) and DAQP starts from it only when its answer is not the QP's
                guess = guess_working_set(white, scaled.C, scaled.lo, scaled.up, scaled.norms, tol, start=sense)
                guessing = time.perf_counter() - t_qp  # counted when DAQP solves the step after all
                if guess is not None:
                    sense = guess.sense
                    if _optimal_on(scaled.C, scaled.lo, scaled.up, sense, guess.y, guess.nu, tol, dual_tol):
                        known = guess.y, guess.nu
            elif sense is not None and it > 1:
                known = _on_working_set(H, q, scaled.C, scaled.lo, scaled.up, sense, tol, dual_tol,
                                        white.L if white is not None else None)
            if known is not None:
                status, (y, lam), spent = st.OPTIMAL, known, time.perf_counter() - t_qp
            else:
                status, y, lam, spent = (rows.solve(H, q, sense, white) if rows is not None
                                         else _qp(H, q, scaled.C, scaled.lo, scaled.up, sense, opts,
                                                  white.on(np.arange(m)) if white is not None else None))
                spent += guessing
            qp_time += spent
            if y is None:
                if feasible:
                    break  # keep the feasible iterate and the bound so far
                return NewtonOutcome(status, None, np.inf, best, it, qp_time, time.perf_counter() - t_start,
                                     start_value)
            sense = _working_set(lam)
            if np.count_nonzero(sense) > n or not sense.any():
                sense = None
            nu = scaled.multipliers(lam)
        else:
            y, nu = x - np.linalg.solve(H, g), np.zeros(m)
        # one evaluation of the loss at z = Cy: the bound at z̄ = z (module docstring) and Φ(y), the line search's
        # first trial
        zy = C @ y
        at_y = loss(zy)
        best = max(best, _bound_at(C, lower, upper, mu, b, zy, at_y[0], at_y[1], nu, abs_C))
        trial = (float(at_y[0].sum() + 0.5 * mu * (y @ y) - b @ y), zy, at_y[1], at_y[2])
        if not feasible:
            x, feasible = y, True
            value, z, d1, d2 = trial
        else:
            d = y - x
            slope = float(g @ d)
            t = 1.0
            while trial[0] > value + _ARMIJO * t * slope and t > 1e-12:
                t *= 0.5
                trial = _evaluate(loss, C, mu, b, x + t * d)
            if trial[0] <= value:
                x = y if t == 1.0 else x + t * d
                value, z, d1, d2 = trial
        gap = value - best
        if gap <= target or it > 3 and gap >= prev_gap:
            break  # at the target, or at the rounding floor (no more progress)
        prev_gap = min(prev_gap, gap)
    best = min(best, value)  # Φ at a feasible point bounds the optimum from above: a bound above it is rounding
    status = st.OPTIMAL if value - best <= target else st.OPTIMAL_INACCURATE
    return NewtonOutcome(status, x, value, best, it, qp_time, time.perf_counter() - t_start, start_value, sense,
                         start_curvature)


__all__ = ["Curvature", "NewtonOutcome", "ScalarLoss", "dual_bound", "solve_separable"]
