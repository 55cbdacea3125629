"""A proven lower bound of a block subproblem's minimum over its feasible set, for a caller with a cutoff.

A caller that only wants points whose value is below a cutoff, as in Gurobi's ``Cutoff`` parameter, gets its answer
without a solve when :func:`lower_bound` is above the cutoff. The driver asks this of a neighbouring piece across a
boundary: a piece that cannot beat the incumbent changes neither the step nor the block gap.

The bound uses one constraint row at a time. With ``P ⪰ μI``, where ``μ > 0`` is proven by
:func:`~multiconvex.rounding.min_eigenvalue_floor`, the unconstrained minimum ``Q* = c − ½qᵀP⁻¹q`` gives
``Q(x) = Q* + ½(x − x*)ᵀP(x − x*) ≥ Q* + ½μ‖x − x*‖²``. Every feasible ``x`` lies in each row's half-space
``{aᵀx ≥ lo}`` (an upper side and a bound alike). The distance of that half-space from ``x*`` is at least
``d̂ − ‖x* − x̂‖``, where ``d̂ = (lo − aᵀx̂)/‖a‖`` is taken at the computed ``x̂`` and
``‖x* − x̂‖ = ‖P⁻¹(Px̂ + q)‖ ≤ ‖Px̂ + q‖/μ``. So the minimum is at least ``Q* + ½μ·max_rows(d̂ − ‖Px̂ + q‖/μ)₊²``.

Every term is evaluated with its rounding (:mod:`multiconvex.rounding`): ``qᵀP⁻¹q`` from above by
:func:`~multiconvex.rounding.inverse_quadratic_upper`, the residual and the row products within ``γ_{n+1}`` of
their absolute values, and the norms from above. ``P`` is the matrix of :meth:`BlockSubproblem.P_dense`. The bound is
strong where a row barely depends on the block but asks it to move far: a neighbouring piece whose flipped unit
the block can hardly reach. It is ``-inf`` where ``P`` is not proven positive definite (no weight decay, no prox).

Examples
--------
>>> import numpy as np
>>> from multiconvex.subproblem import BlockSubproblem
>>> far = BlockSubproblem.from_dense(np.eye(2), np.zeros(2), A=np.array([[1e-6, 0.0]]), l=[1e-3],
...                                 u=[np.inf])   # x₁ ≥ 1000: the minimum is ½·1000² = 500,000
>>> round(lower_bound(far))   # μ = 0.9: the eigenvalue floor keeps a tenth for its proof
450000
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from multiconvex.rounding import UNDERFLOW, gamma, inverse_quadratic_upper, min_eigenvalue_floor, norm_upper
from multiconvex.subproblem import BlockSubproblem

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


def lower_bound(sub: BlockSubproblem) -> float:
    """A lower bound of ``min sub.value(x)`` over ``sub``'s rows and bounds, valid in floating point: ``inf`` when a
    zero row proves the set empty, ``-inf`` when nothing is proven (``P`` not proven positive definite)."""
    n = sub.n
    if n == 0:
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
    eta = (n + 4) * UNDERFLOW
    upper = inverse_quadratic_upper(P, factor, sub.q, mu)  # ≥ qᵀP⁻¹q
    half = 0.5 * upper
    q_star = (sub.c - half) - gamma(2) * (abs(sub.c) + half) - eta  # ≤ Q*
    x_hat = scipy.linalg.cho_solve(factor, -sub.q)
    abs_x = np.abs(x_hat)
    residual = (np.abs(P @ x_hat + sub.q) + gamma(n + 1) * (np.abs(P) @ abs_x + np.abs(sub.q)) + 2 * eta) \
        * (1.0 + gamma(n + 4))  # ≥ |Px̂ + q| entrywise
    moved = norm_upper(residual) / mu * (1.0 + gamma(3))  # ≥ ‖x* − x̂‖
    M, b = _sides(sub)
    if M.shape[0] == 0 or not np.all(np.isfinite(M.data)):
        return q_star
    slack = b - M @ x_hat  # how far each side is from x̂ (positive: x̂ violates it)
    error = (gamma(n + 1) * (abs(M) @ abs_x + np.abs(b)) + eta) * (1.0 + gamma(n + 4))
    low = slack - error - gamma(1) * np.abs(slack)  # ≤ b − a·x̂
    norms = _row_norms_upper(M)
    if np.any((norms == 0) & (low > 0)):
        return math.inf  # a zero row asks 0 ≥ b > 0: the set is empty, so its minimum is +inf
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where((norms > 0) & (low > 0), low / norms, 0.0) * (1.0 - gamma(2))
    reach = float(np.max(distance, initial=0.0)) * (1.0 - gamma(1)) - moved * (1.0 + gamma(1))
    if not reach > 0:
        return q_star
    gain = 0.5 * mu * reach * reach * (1.0 - gamma(4))
    total = q_star + gain
    return total - gamma(1) * (abs(q_star) + gain)
