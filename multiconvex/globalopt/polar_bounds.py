"""Dual bounds on the per-pattern programs of the two-layer ReLU polar, tightened two rows at a time.

For a pattern's program ``max cᵀu s.t. C u ≥ 0, ‖u‖ ≤ 1`` (rows ``c_i`` of ``C = (2D − I) X``) every
``μ ≥ 0`` gives an upper bound by weak duality: for ``u`` in the cone ``μᵀC u ≥ 0``, so
``cᵀu ≤ (c + Cᵀμ)ᵀu ≤ ‖c + Cᵀμ‖``. The bound holds for *any* non-negative ``μ``, however it was found, so only
its evaluation is rounded (covered by a margin). :func:`refine_bounds` searches ``μ`` supported on two rows
(an active-set walk: project ``c`` onto the cone of the two rows, add the row the projection violates most,
keep the better pair) and stops a program as soon as its projection ``U = c + Cᵀμ`` lies in the whole cone:
then ``U`` is feasible, ``cᵀU = ‖U‖²`` (complementarity), and the program's value ``‖U‖`` is attained — a
closed form. In ``d = 3`` every non-zero projection onto a polyhedral cone has multipliers on at most two rows
(its face is a facet or an edge), so the walk can end exactly; it keeps two rows only and may miss the right pair
(on the issue-11 benchmark's data it ends exactly for nearly every program that matters, on small random data
for 15–50%). Where it does not end, the bound it reached is still proven and the caller solves the program (or
prunes it by that bound).
"""

from __future__ import annotations

import numpy as np

__all__ = ["refine_bounds"]

#: Relative margin on an evaluated ``‖c + Cᵀμ‖``: each entry of ``c + μ_a c_a + μ_b c_b`` is rounded within a few
#: units of ``|c| + μ_a|c_a| + μ_b|c_b|``; 1e-12 of that sum (and of the norm) is about 1e3 times more.
BOUND_MARGIN = 1e-12


def _pair(c: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``min_{μ ≥ 0} ‖c + μ_a r_a + μ_b r_b‖`` over the four supports, for each program: (proven bound, point)."""
    na, nb = np.einsum("pd,pd->p", ra, ra), np.einsum("pd,pd->p", rb, rb)
    ca, cb, ab = np.einsum("pd,pd->p", c, ra), np.einsum("pd,pd->p", c, rb), np.einsum("pd,pd->p", ra, rb)
    ma = np.maximum(0.0, -ca) / np.maximum(na, 1e-300)
    mb = np.maximum(0.0, -cb) / np.maximum(nb, 1e-300)
    det = na * nb - ab * ab
    with np.errstate(divide="ignore", invalid="ignore"):
        pa = (-nb * ca + ab * cb) / det
        pb = (-na * cb + ab * ca) / det
    both = (det > 1e-12 * na * nb) & (pa >= 0) & (pb >= 0)
    pa, pb = np.where(both, pa, 0.0), np.where(both, pb, 0.0)
    mus = [(np.zeros_like(ma), np.zeros_like(ma)), (ma, np.zeros_like(ma)), (np.zeros_like(ma), mb), (pa, pb)]
    points = np.stack([c + a[:, None] * ra + b[:, None] * rb for a, b in mus])             # 4 × p × d
    size = np.sqrt(np.einsum("kpd,kpd->kp", points, points))
    scale = np.linalg.norm(c, axis=1) + np.array([a * np.sqrt(na) + b * np.sqrt(nb) for a, b in mus])
    bounds = size * (1.0 + BOUND_MARGIN) + BOUND_MARGIN * scale
    bounds[3, ~both] = np.inf
    k = np.argmin(bounds, axis=0)
    at = np.arange(c.shape[0])
    return bounds[k, at], points[k, at]


def refine_bounds(c: np.ndarray, sg: np.ndarray, Xk: np.ndarray, first: np.ndarray, bound: np.ndarray,
                  floor: float, *, iters: int = 4, tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tighten the programs' dual bounds (module docstring) where they exceed ``floor``.

    Parameters
    ----------
    c : ndarray (p, d)
        Each program's objective vector (``s·XᵀDG``).
    sg : ndarray (p, n)
        Each program's row signs: its rows are ``sg[q, i]·Xk[i]``.
    Xk : ndarray (n, d)
        The rows that constrain (rows treated as zero left out).
    first : ndarray of int (p,)
        Each program's most violated row (the one-row bound's row).
    bound : ndarray (p,)
        Proven bounds so far; only lowered.
    floor : float
        A lower bound on the polar: a program whose bound is at most it (or at most the best closed form found
        here) is left as it is — its bound already decides it.
    iters : int
        Rows added per program at most.
    tol : float
        Feasibility tolerance of a closed form, relative to ``‖x_i‖·‖U‖`` of each row (a cosine); the caller
        settles a closed form only where its value is attained at its point (:func:`.relu_polar.relu_polar`).

    Returns
    -------
    bound : ndarray (p,)
        The tightened proven bounds.
    closed : ndarray of bool (p,)
        Programs solved in closed form: their value is ``‖point‖``, attained at ``point / ‖point‖`` up to the
        feasibility tolerance ``tol``.
    point : ndarray (p, d)
        Each program's last projection ``c + Cᵀμ``.
    """
    bound = np.array(bound, dtype=float)
    p = c.shape[0]
    closed = np.zeros(p, dtype=bool)
    a, b = first.copy(), first.copy()
    ra = sg[np.arange(p), a][:, None] * Xk[a]
    point = c + (np.maximum(0.0, -np.einsum("pd,pd->p", c, ra)) / np.maximum(np.einsum("pd,pd->p", ra, ra),
                                                                               1e-300))[:, None] * ra
    xk = np.linalg.norm(Xk, axis=1)
    for it in range(iters + 1):
        live = np.flatnonzero(~closed & (bound > floor))
        if not live.size:
            break
        V = sg[live] * (point[live] @ Xk.T)
        cosines = V / np.maximum(xk, 1e-300)
        k = np.argmin(cosines, axis=1)
        size = np.linalg.norm(point[live], axis=1)
        # feasible to tol in each row's own scale (a cosine): a row of norm 1e-11·max‖x‖ counts as much as any
        inside = (cosines[np.arange(live.size), k] >= -tol * size) & (size > 0)
        done = live[inside]
        closed[done] = True
        if done.size:
            floor = max(floor, float(size[inside].max()) * (1.0 - 1e-9))
        rest, k = live[~inside], k[~inside]
        if it == iters or not rest.size:
            break
        rk = sg[rest, k][:, None] * Xk[k]
        best_b, best_u = _pair(c[rest], sg[rest, a[rest]][:, None] * Xk[a[rest]], rk)     # rows (a, k)
        bb, uu = _pair(c[rest], sg[rest, b[rest]][:, None] * Xk[b[rest]], rk)             # rows (b, k)
        better = bb < best_b
        best_b, best_u = np.where(better, bb, best_b), np.where(better[:, None], uu, best_u)
        keep = np.where(better, b[rest], a[rest])
        bound[rest] = np.minimum(bound[rest], best_b)
        point[rest], a[rest], b[rest] = best_u, keep, k
    return bound, closed, point
