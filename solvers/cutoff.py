"""A proven lower bound of a block subproblem's minimum over its feasible set, for a caller with a cutoff.

A caller that only wants points whose value is below a cutoff, as in Gurobi's ``Cutoff`` parameter, gets its answer
without a solve when :func:`lower_bound` is above the cutoff. The driver asks this of a neighbouring piece across a
boundary: a piece that cannot beat the incumbent changes neither the step nor the block gap.

Two bounds, the larger is returned; both need ``P ⪰ μI`` with ``μ > 0`` proven by
:func:`~multiconvex.rounding.min_eigenvalue_floor` (so ``-inf`` without weight decay or prox):

* **one row at a time** (:func:`_row_bound`): the unconstrained minimum ``Q* = c − ½qᵀP⁻¹q`` gives
  ``Q(x) ≥ Q* + ½μ‖x − x*‖²``, and every feasible ``x`` lies in each row's half-space ``{aᵀx ≥ lo}`` (an upper
  side and a bound alike), at least ``d̂ − ‖Px̂ + q‖/μ`` from ``x*`` (``d̂`` the distance from the computed ``x̂``).
  Strong where one row barely depends on the block but asks it to move far;
* **the Lagrangian dual along a ray** (:func:`_ray_bound`): ``g(y) = c + bᵀy − ½(q − Mᵀy)ᵀP⁻¹(q − Mᵀy)`` for the
  rows ``Mx ≥ b``, a lower bound for any ``y ≥ 0`` (weak duality), at ``y = t·y₀`` with ``y₀`` the nonnegative
  least squares of ``Mᵀy ≈ 0, bᵀy ≈ 1``. Strong where the set is empty or nearly so but no backend's ray passes
  the exact check (rows of norm 1e-13 that are nearly opposite): the bound then grows with the ray's quality
  (1e22 on such layer-block pieces) instead of needing it exact.

Every term is evaluated with its rounding (:mod:`multiconvex.rounding`): ``vᵀP⁻¹v`` from above by
:func:`~multiconvex.rounding.inverse_quadratic_upper`, ``q − Mᵀy`` with its radius, the row products within
``γ_{n+1}`` of their absolute values, and the norms from above. ``P`` is the matrix of
:meth:`BlockSubproblem.P_dense`.

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> far = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1e-6, 0.0]]), l=[1e-3],
...                                 u=[np.inf])   # x₁ ≥ 1000: the minimum is ½·1000² = 500,000
>>> round(lower_bound(far))   # one row: the dual along it is exact
500000
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp

from multiconvex.rounding import (
    UNDERFLOW,
    UNIT_ROUNDOFF,
    MidpointRadius,
    gamma,
    inverse_quadratic_upper,
    min_eigenvalue_floor,
    norm_upper,
)
from multiconvex.subproblem import BlockSubproblem

from .matrix import scaled_rows

__all__ = ["lower_bound"]


def _sides(sub: BlockSubproblem) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray]:
    """Every side of the feasible set as rows ``a_i·x ≥ b_i``: the finite lower sides of ``A`` and of the
    bounds, then the finite upper sides negated (negation is exact)."""
    rows: list[np.ndarray | sp.csr_matrix] = []
    rhs: list[np.ndarray] = []
    if sub.A is not None and sub.m:
        for side, sign in ((sub.l, 1.0), (sub.u, -1.0)):
            keep = np.flatnonzero(np.isfinite(side))
            if keep.size:
                rows.append(sign * sub.A[keep])
                rhs.append(sign * side[keep])
    if sub.has_bounds:
        lb, ub = sub.box()
        eye = sp.identity(sub.n, format="csr")
        for side, sign in ((lb, 1.0), (ub, -1.0)):
            keep = np.flatnonzero(np.isfinite(side))
            if keep.size:
                rows.append(sign * eye[keep])
                rhs.append(sign * side[keep])
    if not rows:
        return sp.csr_matrix((0, sub.n)), np.zeros(0)
    return sp.vstack([sp.csr_matrix(r) for r in rows], format="csr"), np.concatenate(rhs)


def _row_norms_upper(M: sp.csr_matrix) -> np.ndarray:
    """An upper bound of each row's Euclidean norm, scaled by the row's largest entry so that no square
    underflows (0 for a zero row)."""
    absM = abs(M)
    top = np.asarray(absM.max(axis=1).todense()).ravel()
    scale = np.where(top > 0, top, 1.0)
    scaled = sp.diags(1.0 / scale) @ absM
    sums = np.asarray(scaled.multiply(scaled).sum(axis=1)).ravel()
    n = M.shape[1]
    return np.where(top > 0, top * np.sqrt(sums) * (1.0 + gamma(n + 6)), 0.0)


#: Largest ``rows × variables`` for which :func:`lower_bound` looks for a dual ray (a dense copy of the rows).
RAY_ENTRIES = 5_000_000


def lower_bound(sub: BlockSubproblem) -> float:
    """A lower bound of ``min sub.value(x)`` over ``sub``'s rows and bounds, valid in floating point: ``inf`` when a
    zero row proves the set empty, ``-inf`` when nothing is proven (``P`` not proven positive definite). The larger of
    the one-row bound (:func:`_row_bound`) and the dual bound along a ray (:func:`_ray_bound`)."""
    n = sub.n
    if n == 0 or sub.quad:  # Kron terms: P_dense's assembly rounds, and cancelling terms can hide an indefinite sum
        return -math.inf
    P = sub.P_dense()
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(sub.q)) and math.isfinite(sub.c)):
        return -math.inf
    P = 0.5 * (P + P.T)  # the symmetric part (the exact objective's; P_dense is symmetric up to its assembly)
    mu = min_eigenvalue_floor(P)
    if not mu > 0:
        return -math.inf
    try:
        factor = scipy.linalg.cho_factor(P, lower=True)
    except np.linalg.LinAlgError:
        return -math.inf
    M, b = _sides(sub)
    if M.shape[0] and not np.all(np.isfinite(M.data)):
        return -math.inf
    rows = _finite_or_none(_row_bound(P, factor, mu, sub.q, sub.c, M, b))
    if rows == math.inf or M.shape[0] == 0 or M.shape[0] * n > RAY_ENTRIES:
        return rows
    with np.errstate(all="ignore"):
        ray = _finite_or_none(_ray_bound(P, factor, mu, sub.q, sub.c, M, b))
    return max(rows, ray)


def _finite_or_none(bound: float) -> float:
    """``bound``, or ``-inf`` (nothing proven) where an overflow made it ``nan``."""
    return -math.inf if math.isnan(bound) else bound


def _row_bound(P: np.ndarray, factor: tuple, mu: float, q: np.ndarray, c: float, M: sp.csr_matrix,
               b: np.ndarray) -> float:
    """``Q* + ½μ·max_rows(d̂ − ‖Px̂ + q‖/μ)₊²`` (the module docstring), every term rounded down."""
    n = q.size
    eta = (n + 4) * UNDERFLOW
    upper = inverse_quadratic_upper(P, factor, q, mu)  # ≥ qᵀP⁻¹q
    half = 0.5 * upper
    q_star = (c - half) - gamma(2) * (abs(c) + half) - eta  # ≤ Q*
    x_hat = scipy.linalg.cho_solve(factor, -q)
    abs_x = np.abs(x_hat)
    residual = (np.abs(P @ x_hat + q) + gamma(n + 1) * (np.abs(P) @ abs_x + np.abs(q)) + 2 * eta) \
        * (1.0 + gamma(n + 4))  # ≥ |Px̂ + q| entrywise
    moved = norm_upper(residual) / mu * (1.0 + gamma(3))  # ≥ ‖x* − x̂‖
    if M.shape[0] == 0:
        return q_star
    slack = b - M @ x_hat  # how far each side is from x̂ (positive: x̂ violates it)
    error = (gamma(n + 1) * (abs(M) @ abs_x + np.abs(b)) + eta) * (1.0 + gamma(n + 4))
    low = slack - error - gamma(1) * np.abs(slack)  # ≤ b − a·x̂
    norms = _row_norms_upper(M)
    if np.any((norms == 0) & (low > 0)):
        return math.inf  # a zero row asks 0 ≥ b > 0: the set is empty, so its minimum is +inf
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        distance = np.where((norms > 0) & (low > 0), low / norms, 0.0) * (1.0 - gamma(2))
    reach = float(np.max(distance, initial=0.0)) * (1.0 - gamma(1)) - moved * (1.0 + gamma(1))
    if not reach > 0:
        return q_star
    gain = 0.5 * mu * reach * reach * (1.0 - gamma(4))
    total = q_star + gain
    return total - gamma(1) * (abs(q_star) + gain)


def _ray_bound(P: np.ndarray, factor: tuple, mu: float, q: np.ndarray, c: float, M: sp.csr_matrix,
               b: np.ndarray) -> float:
    """The Lagrangian dual ``g(y) = c + bᵀy − ½(q − Mᵀy)ᵀP⁻¹(q − Mᵀy)``, a lower bound for any ``y ≥ 0`` (weak
    duality), at ``y = t·y₀``: ``y₀ ≥ 0`` the nonnegative least squares of ``Mᵀy ≈ 0, bᵀy ≈ 1`` on the rows scaled by
    powers of two (exact), so a near-Farkas ray where the set is empty or nearly so, and ``t`` the maximiser of
    ``g`` along it. Where the backends could not prove a piece empty (their rays fail the exact check) this bound
    grows with the ray's quality instead of needing it exact. ``-inf`` when no ray is found."""
    n, m = q.size, M.shape[0]
    D, b, _ = scaled_rows(M.toarray(), b, b)  # the same rows and sides, bit for bit
    weight = 1.0 / max(float(np.max(np.abs(b), initial=0.0)), 1.0)
    K = np.vstack([D.T, weight * b[None, :]])
    try:
        y0, _ = scipy.optimize.nnls(K, np.r_[np.zeros(n), weight], maxiter=10 * (n + 1))
    except RuntimeError:  # too many iterations: no ray
        return -math.inf
    v = D.T @ y0
    pull = float(b @ y0)
    if not (pull > 0 and np.all(np.isfinite(y0))):
        return -math.inf
    # g(t·y₀) ≥ c + t·bᵀy₀ − ½(a + t·e)², a = ‖q‖_{P⁻¹}, e = ‖Mᵀy₀‖_{P⁻¹} plus the rounding of Mᵀ(t·y₀) per unit of
    # t (it grows with t): its maximiser, estimated here (the bound below is evaluated with its rounding at any t)
    a = math.sqrt(max(float(q @ scipy.linalg.cho_solve(factor, q)), 0.0))
    spread = gamma(m + 2) * (np.abs(D).T @ y0)
    along = math.sqrt(max(float(v @ scipy.linalg.cho_solve(factor, v)), 0.0))
    e = along + float(np.linalg.norm(spread)) / math.sqrt(mu)
    if not pull > a * e:
        return -math.inf
    t = (pull - a * e) / e / e if e > 0 else 1.0 / UNIT_ROUNDOFF  # (e·e may underflow; t then overflows: refused)
    if not (t > 0 and math.isfinite(t)):
        return -math.inf
    y = t * y0  # any y ≥ 0 gives a valid bound: t only chooses it
    w = MidpointRadius.exact(q).plus(D, -y)  # q − Dᵀy, with its rounding
    if not (np.all(np.isfinite(w.value)) and np.all(np.isfinite(w.radius))):
        return -math.inf
    root = math.sqrt(max(inverse_quadratic_upper(P, factor, w.value, mu), 0.0)) * (1.0 + gamma(2)) \
        + norm_upper(w.radius) / math.sqrt(mu) * (1.0 + gamma(3))  # ≥ ‖q − Dᵀy‖_{P⁻¹}
    half = 0.5 * root * root * (1.0 + gamma(3))
    by = float(b @ y)
    by_low = by - (gamma(m) * float(np.abs(b) @ y) + m * UNDERFLOW) * (1.0 + gamma(2))
    total = (c + by_low) - half
    return total - gamma(2) * (abs(c) + abs(by_low) + half) - 4 * UNDERFLOW
