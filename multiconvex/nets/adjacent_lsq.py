"""The least-squares pieces of the adjacent-piece bound (:mod:`multiconvex.nets.adjacent`): the boxes of ``α`` per side
of the concave kinks, a least-squares solver factored once per block, the bounded least squares (BVLS, then L-BFGS-B)
and the lower model's minimiser from a residual.

Examples
--------
>>> import numpy as np
>>> M, b = np.eye(2), np.array([1.0, -1.0])
>>> alpha, r = box_solution(M, b, np.zeros(2), np.full(2, np.inf))  # α ≥ 0: the second entry cannot reach −1
>>> alpha.tolist(), r.tolist()
([1.0, 0.0], [0.0, 1.0])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np
import scipy.linalg
from scipy.optimize import lsq_linear, minimize


def side_boxes(cp: np.ndarray, cm: np.ndarray, concave: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The boxes ``[lo, hi]`` of ``α`` for each of the ``2^K`` sides of the ``K`` concave kinks: a convex kink
    ``[c⁻, c⁺]`` (both sides), a concave one ``α ≤ c⁺`` on the side ``t ≥ 0`` and ``α ≥ c⁻`` on ``t ≤ 0``."""
    cidx = np.nonzero(concave)[0]
    lo, hi = np.where(concave, -np.inf, cm), np.where(concave, np.inf, cp)
    for sides in itertools.product((1, -1), repeat=cidx.size):
        lo_s, hi_s = lo.copy(), hi.copy()
        up = np.asarray(sides, dtype=int) > 0
        hi_s[cidx[up]] = cp[cidx[up]]  # t ≥ 0: α ≤ c⁺
        lo_s[cidx[~up]] = cm[cidx[~up]]  # t ≤ 0: α ≥ c⁻
        yield lo_s, hi_s


def least_squares_solver(M: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``b ↦`` a least-squares ``α`` of ``Mα ≈ b``, factored once: the minimum-norm one through ``MMᵀ`` (c × c) when
    ``M`` has more columns than rows and ``MMᵀ`` is well conditioned, else through ``M``'s SVD (singular values below
    ``ε·max(c, K)`` times the largest dropped, as ``lstsq`` does)."""
    c, K = M.shape
    if K > c:
        G = M @ M.T
        if np.linalg.cond(G) < 1e12:  # well conditioned: the c × c factor; else the SVD (no LinAlgWarning flood)
            try:
                factor = scipy.linalg.cho_factor(G, lower=True)
                return lambda b: M.T @ scipy.linalg.cho_solve(factor, b)
            except (np.linalg.LinAlgError, ValueError):
                pass
    U, sv, Vt = np.linalg.svd(M, full_matrices=False)
    keep = sv > np.finfo(float).eps * max(c, K) * (sv[0] if sv.size else 0.0)
    inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
    return lambda b: Vt.T @ (inv * (U.T @ b))


def finite_or_nan(val: float) -> float:
    return val if math.isfinite(val) else math.nan


def box_solution(M: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, enough: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A bounded least-squares ``α`` in ``[lo, hi]`` (clipped to the box: any α there is valid) and its ``Mα − b``.

    BVLS first; when its ``½‖Mα − b‖²`` is above ``enough`` and it stopped on a stalled cost with its gradient not
    yet at rounding (it can stop far from the optimum when ``M`` has more columns than rows), L-BFGS-B from BVLS's
    point as well, and the better of the two. (scipy's trust-region method was the second solver until a review
    found its backtracking loop never returning on two identical columns, duplicated kink samples: L-BFGS-B stops
    after its iteration limit whatever the data.) ``nan`` entries when neither gives a finite residual."""
    fixed = lo == hi
    alpha = np.where(fixed, lo, 0.0)
    free = ~fixed
    if not free.any():
        return alpha, M @ alpha - b
    rhs = b - M[:, fixed] @ alpha[fixed]
    Mf, lo_f, hi_f = M[:, free], lo[free], hi[free]
    failed = np.full(M.shape[1], np.nan), np.full(M.shape[0], np.nan)
    if not (np.all(np.isfinite(Mf)) and np.all(np.isfinite(rhs))):
        return failed
    try:
        res = lsq_linear(Mf, rhs, bounds=(lo_f, hi_f), method="bvls", tol=1e-13, max_iter=max(100, 20 * Mf.shape[1]))
    except (np.linalg.LinAlgError, ValueError):
        res = None

    def solution(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = alpha.copy()
        full[free] = np.clip(x, lo_f, hi_f)
        return full, Mf @ full[free] - rhs

    best = None
    if res is not None:
        found = solution(res.x)
        r = found[1]
        if np.all(np.isfinite(r)):
            best = found
            scale = max(1.0, float(np.linalg.norm(Mf.T @ rhs)))
            if 0.5 * float(r @ r) <= enough or res.status == 1 or float(res.optimality) <= 1e-12 * scale:
                return found  # decided, or BVLS at its first-order optimality test (or its gradient at rounding)
    start = np.clip(res.x if res is not None and np.all(np.isfinite(res.x)) else np.zeros(Mf.shape[1]), lo_f, hi_f)

    def cost(a: np.ndarray) -> tuple[float, np.ndarray]:
        r = Mf @ a - rhs
        return 0.5 * float(r @ r), Mf.T @ r

    bounds = [(None if math.isinf(a) else float(a), None if math.isinf(c) else float(c)) for a, c in zip(lo_f, hi_f)]
    out = minimize(cost, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxiter": max(200, 20 * Mf.shape[1]), "ftol": 1e-15, "gtol": 1e-14})
    found = solution(out.x)
    r = found[1]
    if np.all(np.isfinite(r)) and (best is None or r @ r < best[1] @ best[1]):
        best = found
    return best if best is not None else failed


def model_direction(Lc: np.ndarray, r: np.ndarray) -> np.ndarray | None:
    """``−P⁻¹(g + Aᵀα) = −L⁻ᵀ(Mα − b)``: the minimiser of the lower model whose residual is ``r``; ``None`` where
    ``r`` is not finite (a review: data near overflow, or a kink's box with an infinite end, raised here)."""
    if not np.all(np.isfinite(r)):
        return None
    return -scipy.linalg.solve_triangular(Lc.T, r, lower=False)


__all__ = ["box_solution", "finite_or_nan", "least_squares_solver", "model_direction", "side_boxes"]
